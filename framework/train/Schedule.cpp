#include "framework/train/Schedule.h"

#include <string>

#include "framework/base/Error.h"
#include "framework/config/Spec.h"

namespace gentrain {

Schedule::Schedule(Every every, int64_t stepsPerEpoch, int64_t totalSteps)
    : every_(every), stepsPerEpoch_(stepsPerEpoch), totalSteps_(totalSteps) {
  if (stepsPerEpoch < 1 || totalSteps < 0) {
    throw UsageError("internal: a schedule of " + std::to_string(totalSteps) + " steps with " +
                     std::to_string(stepsPerEpoch) + " steps per epoch");
  }
}

Schedule::Every Schedule::everyFromSpec(const Spec& spec) {
  return {spec.integer("eval.every_epochs"), spec.integer("sample.every_epochs"),
          spec.integer("checkpoint.every_epochs"), spec.integer("checkpoint.every_steps")};
}

DueWork Schedule::after(int64_t step) const {
  const bool epochEnd = step % stepsPerEpoch_ == 0;
  const int64_t epoch = step / stepsPerEpoch_;
  const auto due = [&](int64_t every) { return epochEnd && every > 0 && epoch % every == 0; };
  DueWork work;
  work.final = step == totalSteps_;
  work.evaluate = work.final || due(every_.evalEpochs);
  work.samples = work.final || due(every_.sampleEpochs);
  work.checkpoint = work.final || due(every_.checkpointEpochs) ||
                    (every_.checkpointSteps > 0 && step % every_.checkpointSteps == 0);
  return work;
}

}  // namespace gentrain
