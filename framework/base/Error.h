#pragma once
/// @file Typed exceptions for gentrain.
///
/// Library code throws these; only `main` catches them, prints them with a rank prefix and exits
/// non-zero. A message names what failed (file, key, value) and says what to do next.

#include <stdexcept>
#include <string>

namespace gentrain {

/// Base of every error gentrain throws on purpose.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// A bad experiment spec or command-line override (carries `file:line:column` and the key path).
class SpecError : public Error {
  using Error::Error;
};

/// Missing, malformed or mismatched data files (HDF5, IDX, images).
class DataError : public Error {
  using Error::Error;
};

/// A failed or inconsistent collective operation; messages carry the backend's file:line.
class CommError : public Error {
  using Error::Error;
};

/// A checkpoint that cannot be written, read or used.
class CheckpointError : public Error {
  using Error::Error;
};

/// Gradients with NaN or infinity under the `stop` policy (train.nonfinite); the parameters are
/// still those before the step.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};

/// A request the user made that cannot be satisfied in this build or on this machine.
class UsageError : public Error {
  using Error::Error;
};

}  // namespace gentrain
