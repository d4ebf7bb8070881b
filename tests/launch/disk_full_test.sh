#!/bin/bash
# A fault of its own CTest entry (faults_disk_full), since it needs root to mount a tmpfs and so
# is reported as skipped (exit 77) where it cannot run, never as passed.
# Storage full while writing a checkpoint: the run directory moves onto a small tmpfs (room for
# about 100 KB more) and is resumed there; the next checkpoint (~250 KB) meets ENOSPC. A clear
# error, the earlier checkpoints untouched, nothing partial left; with room again (the tmpfs
# grown), a resume ends as the uninterrupted run.
# Usage: disk_full_test.sh GENTRAIN "MPIEXEC FLAGS"
gentrain=$1
mpiexec=$2
TEST_NAME=disk-full source "$(dirname "$0")/test_lib.sh"
mkdir -p full
if ! mount -t tmpfs -o size=1m gentrain-probe full 2>/dev/null; then
  echo "SKIPPED: cannot mount a tmpfs here (needs root)"
  exit 77
fi
umount full

fault_run_setup "$gentrain"

big=(model.hidden=[512])
ref_big=$($mpiexec -np 3 "$gentrain" train spec.yaml run.dir=reference-big "${big[@]}" 2>&1 | final)
$mpiexec -np 3 "$gentrain" train spec.yaml run.dir=staged "${big[@]}" --max-steps 4 >/dev/null 2>&1
mkdir -p full
if mount -t tmpfs -o size=$(( $(du -sk staged | cut -f1) + 100 ))k gentrain-full full 2>/dev/null; then
  trap 'umount "$work/full" 2>/dev/null; rm -rf "$work"' EXIT
  cp -a staged/. full/
  before=$(cd full/checkpoints && ls -R && cat */state.bin | sha256sum)
  start=$(date +%s.%N)
  out=$(timeout 120 $mpiexec -np 3 "$gentrain" train spec.yaml run.dir=full "${big[@]}" --resume 2>&1)
  rc=$?
  seconds=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
  after=$(cd full/checkpoints && ls -R && cat */state.bin | sha256sum)
  said=$(grep -oE "state.bin: write failed: No space left on device \(disk full\?\)" <<<"$out" | head -1)
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ -n "$said" ] && [ "$before" = "$after" ]; then
    pass "disk full: exit $rc after $seconds s, says '$said'; checkpoints 2 and 4 untouched, nothing partial left"
  else
    fail "disk full: exit $rc, checkpoints unchanged: $([ "$before" = "$after" ] && echo yes || echo no)"
    echo "$out" | grep -v "PMIX" | tail -8
  fi
  mount -o remount,size=64m full
  resumed=$($mpiexec -np 3 "$gentrain" train spec.yaml run.dir=full "${big[@]}" --resume 2>&1 | final)
  if [ -n "$resumed" ] && [ "$resumed" = "$ref_big" ]; then
    pass "disk full: resumed with room and ended as the uninterrupted run"
    echo "| storage full (ENOSPC) writing the checkpoint of step 6 | $seconds s | 2 (checkpoint every 2) | none |"
  else
    fail "disk full: resume ended with '$resumed', uninterrupted '$ref_big'"
  fi
  umount full
else
  fail "disk full: cannot mount a small tmpfs on full/"
fi

echo "disk full: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
