#pragma once
/// @file Whether to stop, agreed by every rank: a stop signal reaching any one rank stops all of
/// them after the same step, and all of them agree on what kind of stop it is (Note [stop
/// signals] in Preemption.h): SIGUSR1 on any rank asks for a requeue, SIGTERM alone does not.
///
/// The same collective carries rank 0's answer to "is a timed checkpoint due?"
/// (checkpoint.every_minutes), since ranks' clocks differ.

#include <string>

namespace gentrain {

class Communicator;

class StopAgreement {
 public:
  /// `everyMinutes` <= 0: no timed checkpoints.
  StopAgreement(Communicator& comm, double everyMinutes);

  struct Outcome {
    bool stop = false;           ///< some rank got a stop signal: every rank stops
    bool requeue = false;        ///< some rank got SIGUSR1 (time limit): the job should requeue
    bool checkpointDue = false;  ///< rank 0's clock says a timed checkpoint is due
    std::string signal;          ///< the signal this rank got, empty when another rank's
  };
  /// Collective: one all-reduce of three numbers.
  Outcome check();
  /// A checkpoint was just written: the timed interval starts again (also at a run's start).
  void restartClock();

 private:
  Communicator& comm_;
  double everyMinutes_;
  double lastCheckpoint_ = 0;
};

}  // namespace gentrain
