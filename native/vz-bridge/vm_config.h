// vm_config: create()'s JSON (VzConfig in src/host/vm/vz/native.ts) → a validated
// VZVirtualMachineConfiguration. Every check that can name a field runs before VZ sees the value,
// and the VZ calls run inside an NSException barrier (issue 14, defect 7).
#pragma once

#import <Foundation/Foundation.h>
#import <Virtualization/Virtualization.h>

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "js_link.h"
#include "vz_failure.h"

namespace vzb {

struct ShareConfig {
  std::string tag;
  std::string path;
  bool readOnly = true;
};

struct VmConfig {
  std::string kernel;
  std::string initrd;
  std::string rootfs;
  std::string cmdline;
  std::string consoleLog;
  uint32_t cpus = 0;
  uint64_t memoryMiB = 0;
  std::vector<ShareConfig> shares;
};

// Parses the JSON and checks every field's type; throws a JS Error (code VZ_INVALID_CONFIG) naming
// the field. Unknown fields are refused, so a renamed field on the TypeScript side fails loudly.
VmConfig ParseConfig(Napi::Env env, const std::string &json);

// Checks that the files and folders exist, opens the console log (O_CLOEXEC), builds the devices and
// runs validateWithError:. Returns nil and fills *failure on any error or NSException.
VZVirtualMachineConfiguration *BuildConfiguration(const VmConfig &c, Failure *failure);

}  // namespace vzb
