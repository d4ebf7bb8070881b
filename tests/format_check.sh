#!/bin/bash
# Every C++ file of the project formatted as .clang-format says: `clang-format --dry-run
# -Werror`, with Debian 12's clang-format 14 (other versions lay some lines out differently).
# Skips (exit 77) where that is not installed; setup.sh and CI install it.
# To format: git ls-files '*.h' '*.cpp' | xargs clang-format -i
root=$1
cd "$root" || exit 1
if ! command -v clang-format >/dev/null; then
  echo "SKIPPED: clang-format is not installed (apt-get install clang-format)"
  exit 77
fi
version=$(clang-format --version | grep -oE 'version [0-9]+' | grep -oE '[0-9]+')
if [ "$version" != 14 ]; then
  echo "SKIPPED: clang-format $version here; the tree is formatted with clang-format 14 (Debian 12)"
  exit 77
fi
mapfile -t files < <(git ls-files '*.h' '*.cpp' 2>/dev/null || find framework models launch tests -name '*.h' -o -name '*.cpp')
err=$(mktemp)
trap 'rm -f "$err"' EXIT
if clang-format --dry-run -Werror "${files[@]}" 2>"$err"; then
  echo "format: ${#files[@]} files as .clang-format says ($(clang-format --version | head -1))"
  exit 0
fi
places=$(grep -oE '^[^ :]+\.(h|cpp):[0-9]+' "$err" | sort -u)
echo "$places" | head -20
echo "format: $(echo "$places" | cut -d: -f1 | sort -u | wc -l) of ${#files[@]} files differ; run: git ls-files '*.h' '*.cpp' | xargs clang-format -i"
exit 1
