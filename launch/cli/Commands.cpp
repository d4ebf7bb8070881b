#include "launch/cli/Commands.h"

#include "framework/base/Error.h"
#include "framework/train/Model.h"

namespace gentrain {

const Command& CommandList::chosen() const {
  for (const Command& command : commands_) {
    if (command.app->parsed()) return command;
  }
  throw UsageError("say which command to run; --help lists them");
}

Schema schemaFor(const std::string& model) { return ModelRegistry::instance().schemaFor(model); }

}  // namespace gentrain
