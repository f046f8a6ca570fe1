// vz_failure: NSError and NSException → Failure (a JS Error's code and message). Objective-C++ only.
#pragma once

#import <Foundation/Foundation.h>

#include <string>

#include "js_link.h"

namespace vzb {

inline Failure FromNSError(const std::string &what, NSError *_Nullable error) {
  const char *text = error.localizedDescription.UTF8String;
  return Failure{"VZ_ERROR", what + ": " + (text ? text : "unknown Virtualization.framework error")};
}

// The NSException barrier's half: name and reason, e.g. "start raised NSInvalidArgumentException: …".
inline Failure FromException(const std::string &what, NSException *_Nonnull exception) {
  const char *name = exception.name.UTF8String;
  const char *reason = exception.reason.UTF8String;
  return Failure{"VZ_EXCEPTION", what + " raised " + (name ? name : "an NSException") + ": " + (reason ? reason : "")};
}

}  // namespace vzb
