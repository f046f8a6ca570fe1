// vm_config: see vm_config.h.
#include "vm_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>

namespace vzb {

static const char *kInvalid = "VZ_INVALID_CONFIG";

[[noreturn]] static void Bad(Napi::Env env, const std::string &message) {
  Throw(env, Failure{kInvalid, "config." + message});
}

static std::string StringField(Napi::Env env, Napi::Object o, const char *key, const std::string &where) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) Bad(env, where + key + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) Bad(env, where + key + " contains a NUL byte");
  return s;
}

static double IntegerField(Napi::Env env, Napi::Object o, const char *key, double max) {
  Napi::Value v = o.Get(key);
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d >= 1 && d <= max && std::floor(d) == d)) Bad(env, std::string(key) + " must be a whole number from 1");
  return d;
}

static void OnlyKeys(Napi::Env env, Napi::Object o, const std::set<std::string> &allowed, const std::string &where) {
  Napi::Array names = o.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); i++) {
    std::string name = names.Get(i).ToString().Utf8Value();
    if (!allowed.count(name)) Bad(env, where + name + " is not a VzConfig field");
  }
}

VmConfig ParseConfig(Napi::Env env, const std::string &json) {
  Napi::Function parse = env.Global().Get("JSON").As<Napi::Object>().Get("parse").As<Napi::Function>();
  Napi::Value root = parse.Call({Napi::String::New(env, json)});  // a SyntaxError propagates as is
  if (!root.IsObject() || root.IsArray()) Bad(env, "json must be an object");
  Napi::Object o = root.As<Napi::Object>();
  OnlyKeys(env, o, {"kernel", "initrd", "rootfs", "cmdline", "cpus", "memoryMiB", "shares", "consoleLog"}, "");
  VmConfig c;
  c.kernel = StringField(env, o, "kernel", "");
  c.initrd = StringField(env, o, "initrd", "");
  c.rootfs = StringField(env, o, "rootfs", "");
  c.cmdline = StringField(env, o, "cmdline", "");
  c.consoleLog = StringField(env, o, "consoleLog", "");
  c.cpus = static_cast<uint32_t>(IntegerField(env, o, "cpus", 4294967295.0));
  c.memoryMiB = static_cast<uint64_t>(IntegerField(env, o, "memoryMiB", 9007199254740991.0 / (1024.0 * 1024.0)));
  Napi::Value shares = o.Get("shares");
  if (!shares.IsArray()) Bad(env, "shares must be an array");
  Napi::Array list = shares.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) {
    std::string where = "shares[" + std::to_string(i) + "].";
    Napi::Value item = list.Get(i);
    if (!item.IsObject()) Bad(env, where.substr(0, where.size() - 1) + " must be an object");
    Napi::Object s = item.As<Napi::Object>();
    OnlyKeys(env, s, {"tag", "path", "readOnly"}, where);
    Napi::Value ro = s.Get("readOnly");
    if (!ro.IsBoolean()) Bad(env, where + "readOnly must be a boolean");
    c.shares.push_back({StringField(env, s, "tag", where), StringField(env, s, "path", where), ro.As<Napi::Boolean>().Value()});
  }
  return c;
}

// nil (and *failure) when the path is missing, of the wrong kind, or not UTF-8.
static NSURL *ExistingUrl(const std::string &field, const std::string &path, bool directory, Failure *failure) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    *failure = {kInvalid, "config." + field + ": " + path + ": " + std::strerror(errno)};
    return nil;
  }
  if (directory ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
    *failure = {kInvalid, "config." + field + ": " + path + (directory ? " is not a folder" : " is not a regular file")};
    return nil;
  }
  NSString *p = [NSString stringWithUTF8String:path.c_str()];
  NSURL *url = p ? [NSURL fileURLWithPath:p isDirectory:directory] : nil;
  if (!url) *failure = {kInvalid, "config." + field + ": " + path + " is not a usable file URL"};
  return url;
}

static bool CheckLimits(const VmConfig &c, Failure *failure) {
  NSUInteger minCpu = VZVirtualMachineConfiguration.minimumAllowedCPUCount;
  NSUInteger maxCpu = VZVirtualMachineConfiguration.maximumAllowedCPUCount;
  if (c.cpus < minCpu || c.cpus > maxCpu) {
    *failure = {kInvalid, "config.cpus " + std::to_string(c.cpus) + " is outside what this Mac allows (" +
                              std::to_string(minCpu) + ".." + std::to_string(maxCpu) + ")"};
    return false;
  }
  uint64_t bytes = c.memoryMiB * 1024ULL * 1024ULL;
  uint64_t minMem = VZVirtualMachineConfiguration.minimumAllowedMemorySize;
  uint64_t maxMem = VZVirtualMachineConfiguration.maximumAllowedMemorySize;
  if (bytes < minMem || bytes > maxMem) {
    *failure = {kInvalid, "config.memoryMiB " + std::to_string(c.memoryMiB) + " is outside what this Mac allows (" +
                              std::to_string(minMem >> 20) + ".." + std::to_string(maxMem >> 20) + " MiB)"};
    return false;
  }
  return true;
}

static NSArray<VZDirectorySharingDeviceConfiguration *> *BuildShares(const VmConfig &c, Failure *failure) {
  NSMutableArray<VZDirectorySharingDeviceConfiguration *> *devices = [NSMutableArray array];
  std::set<std::string> seen;
  for (size_t i = 0; i < c.shares.size(); i++) {
    const ShareConfig &s = c.shares[i];
    std::string field = "shares[" + std::to_string(i) + "]";
    NSString *tag = [NSString stringWithUTF8String:s.tag.c_str()];
    NSError *error = nil;
    // initWithTag: raises NSInvalidArgumentException on a bad tag; ask first so the error names it.
    if (!tag || ![VZVirtioFileSystemDeviceConfiguration validateTag:tag error:&error]) {
      *failure = FromNSError("config." + field + ".tag \"" + s.tag + "\" is invalid", error);
      failure->code = kInvalid;
      return nil;
    }
    if (!seen.insert(s.tag).second) {
      *failure = {kInvalid, "config." + field + ".tag \"" + s.tag + "\" is used twice"};
      return nil;
    }
    NSURL *url = ExistingUrl(field + ".path", s.path, true, failure);
    if (!url) return nil;
    VZSharedDirectory *dir = [[VZSharedDirectory alloc] initWithURL:url readOnly:s.readOnly];
    VZVirtioFileSystemDeviceConfiguration *fs = [[VZVirtioFileSystemDeviceConfiguration alloc] initWithTag:tag];
    fs.share = [[VZSingleDirectoryShare alloc] initWithDirectory:dir];
    [devices addObject:fs];
  }
  return devices;
}

// The guest's console=hvc0: VZ's virtio console, written to consoleLog (the readiness line is read there).
static VZVirtioConsoleDeviceSerialPortConfiguration *BuildConsole(const VmConfig &c, Failure *failure) {
  int fd = open(c.consoleLog.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    *failure = {kInvalid, "config.consoleLog: " + c.consoleLog + ": " + std::strerror(errno)};
    return nil;
  }
  NSFileHandle *log = [[NSFileHandle alloc] initWithFileDescriptor:fd closeOnDealloc:YES];
  VZVirtioConsoleDeviceSerialPortConfiguration *console = [[VZVirtioConsoleDeviceSerialPortConfiguration alloc] init];
  console.attachment = [[VZFileHandleSerialPortAttachment alloc] initWithFileHandleForReading:nil fileHandleForWriting:log];
  return console;
}

static VZVirtualMachineConfiguration *Assemble(const VmConfig &c, Failure *failure) {
  NSURL *kernel = ExistingUrl("kernel", c.kernel, false, failure);
  NSURL *initrd = kernel ? ExistingUrl("initrd", c.initrd, false, failure) : nil;
  NSURL *rootfs = initrd ? ExistingUrl("rootfs", c.rootfs, false, failure) : nil;
  NSString *cmdline = [NSString stringWithUTF8String:c.cmdline.c_str()];
  if (!rootfs || !CheckLimits(c, failure)) return nil;
  if (!cmdline) {
    *failure = {kInvalid, "config.cmdline is not valid UTF-8"};
    return nil;
  }
  NSArray<VZDirectorySharingDeviceConfiguration *> *shares = BuildShares(c, failure);
  if (!shares) return nil;

  VZLinuxBootLoader *boot = [[VZLinuxBootLoader alloc] initWithKernelURL:kernel];
  boot.initialRamdiskURL = initrd;
  boot.commandLine = cmdline;

  NSError *error = nil;
  VZDiskImageStorageDeviceAttachment *root = [[VZDiskImageStorageDeviceAttachment alloc] initWithURL:rootfs
                                                                                             readOnly:YES
                                                                                                error:&error];
  if (!root) {
    *failure = FromNSError("config.rootfs: " + c.rootfs + " cannot be attached", error);
    return nil;
  }
  VZVirtioConsoleDeviceSerialPortConfiguration *console = BuildConsole(c, failure);
  if (!console) return nil;

  VZVirtualMachineConfiguration *cfg = [[VZVirtualMachineConfiguration alloc] init];
  cfg.bootLoader = boot;
  cfg.CPUCount = c.cpus;
  cfg.memorySize = c.memoryMiB * 1024ULL * 1024ULL;
  cfg.storageDevices = @[ [[VZVirtioBlockDeviceConfiguration alloc] initWithAttachment:root] ];
  cfg.directorySharingDevices = shares;
  cfg.serialPorts = @[ console ];
  // No NIC at all: SSH and egress use vsock. Power button: VZ's own (ACPI on Intel, PL061 GPIO on
  // Apple silicon) through requestStopWithError:, nothing to configure.
  cfg.socketDevices = @[ [[VZVirtioSocketDeviceConfiguration alloc] init] ];
  cfg.entropyDevices = @[ [[VZVirtioEntropyDeviceConfiguration alloc] init] ];
  cfg.memoryBalloonDevices = @[ [[VZVirtioTraditionalMemoryBalloonDeviceConfiguration alloc] init] ];

  if (![cfg validateWithError:&error]) {
    *failure = FromNSError("VZ rejected the configuration", error);
    return nil;
  }
  return cfg;
}

VZVirtualMachineConfiguration *BuildConfiguration(const VmConfig &c, Failure *failure) {
  @try {
    return Assemble(c, failure);
  } @catch (NSException *exception) {
    *failure = FromException("building the VZ configuration", exception);
    return nil;
  }
}

}  // namespace vzb
