// vz-bridge: a flat N-API surface over Apple's Virtualization.framework (macOS 13+).
//
// Shape (see src/host/vm/vz/native.ts for the typed JS side):
//   create(configJson: string) -> handle        validate + build a VZVirtualMachine on its own serial queue
//   start(handle) -> Promise<void>              startWithCompletionHandler
//   requestStop(handle) -> boolean              ACPI-style power button (graceful)
//   stop(handle) -> Promise<void>               forced stop
//   connect(handle, port) -> Promise<number>    vsock connection to a guest port; resolves with a dup()ed fd
//   listen(handle, port, cb(fd))                guest→host vsock connections on `port` (egress proxy)
//   onState(handle, cb(state: string))          state changes ("running", "stopped", "error", ...)
//
// Every VZ call runs on the VM's serial dispatch queue, as Virtualization.framework requires;
// results come back to JS through napi_threadsafe_function + napi_deferred. The process that
// loads this addon must carry the com.apple.security.virtualization entitlement (the driver runs
// it in a child process started from a signed copy of node).
//
// NOT BUILT OR RUN IN CI: no Mac exists where this project is developed. See README.

#import <Foundation/Foundation.h>
#import <Virtualization/Virtualization.h>
#include <node_api.h>
#include <unistd.h>
#include <string>

struct Vm;

@interface CVMDelegate : NSObject <VZVirtualMachineDelegate, VZVirtioSocketListenerDelegate>
@property(nonatomic, assign) Vm *vm;
@end

struct Vm {
  dispatch_queue_t queue;
  VZVirtualMachine *machine;
  CVMDelegate *delegate;
  napi_threadsafe_function stateFn = nullptr;
  napi_threadsafe_function listenFn = nullptr;
  VZVirtioSocketListener *listener = nil;
};

// Payload carried from a VZ queue to the JS thread.
struct Completion {
  napi_deferred deferred;
  bool ok;
  std::string error;
  int fd = -1;
};

static napi_value Throw(napi_env env, const char *msg) {
  napi_throw_error(env, "VZ_BRIDGE", msg);
  return nullptr;
}

static std::string StringArg(napi_env env, napi_value v) {
  size_t len = 0;
  napi_get_value_string_utf8(env, v, nullptr, 0, &len);
  std::string s(len, '\0');
  napi_get_value_string_utf8(env, v, s.data(), len + 1, &len);
  return s;
}

static Vm *HandleArg(napi_env env, napi_value v) {
  void *p = nullptr;
  napi_get_value_external(env, v, &p);
  return static_cast<Vm *>(p);
}

// Settles a promise on the JS thread.
static void SettleOnJs(napi_env env, napi_value /*js_cb*/, void * /*ctx*/, void *data) {
  auto *c = static_cast<Completion *>(data);
  if (env != nullptr) {
    if (c->ok) {
      napi_value v;
      if (c->fd >= 0) napi_create_int32(env, c->fd, &v);
      else napi_get_undefined(env, &v);
      napi_resolve_deferred(env, c->deferred, v);
    } else {
      napi_value msg, err;
      napi_create_string_utf8(env, c->error.c_str(), NAPI_AUTO_LENGTH, &msg);
      napi_create_error(env, nullptr, msg, &err);
      napi_reject_deferred(env, c->deferred, err);
    }
  }
  delete c;
}

static napi_threadsafe_function OneShot(napi_env env, const char *name) {
  napi_value resource;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
  napi_threadsafe_function fn;
  napi_create_threadsafe_function(env, nullptr, nullptr, resource, 0, 1, nullptr, nullptr, nullptr, SettleOnJs, &fn);
  return fn;
}

static void Finish(napi_threadsafe_function fn, Completion *c) {
  napi_call_threadsafe_function(fn, c, napi_tsfn_blocking);
  napi_release_threadsafe_function(fn, napi_tsfn_release);
}

static NSURL *FileUrl(NSDictionary *d, NSString *key) {
  NSString *p = d[key];
  return p ? [NSURL fileURLWithPath:p] : nil;
}

// Builds the configuration from the JSON the driver sends (see VzConfig in native.ts).
static VZVirtualMachineConfiguration *BuildConfig(NSDictionary *c, NSError **error) {
  VZLinuxBootLoader *boot = [[VZLinuxBootLoader alloc] initWithKernelURL:FileUrl(c, @"kernel")];
  boot.initialRamdiskURL = FileUrl(c, @"initrd");
  boot.commandLine = c[@"cmdline"];

  VZVirtualMachineConfiguration *cfg = [[VZVirtualMachineConfiguration alloc] init];
  cfg.bootLoader = boot;
  cfg.CPUCount = [c[@"cpus"] unsignedIntegerValue];
  cfg.memorySize = [c[@"memoryMiB"] unsignedLongLongValue] * 1024ULL * 1024ULL;

  VZDiskImageStorageDeviceAttachment *root =
      [[VZDiskImageStorageDeviceAttachment alloc] initWithURL:FileUrl(c, @"rootfs") readOnly:YES error:error];
  if (!root) return nil;
  cfg.storageDevices = @[ [[VZVirtioBlockDeviceConfiguration alloc] initWithAttachment:root] ];

  NSMutableArray *shares = [NSMutableArray array];
  for (NSDictionary *s in c[@"shares"]) {
    VZSharedDirectory *dir = [[VZSharedDirectory alloc] initWithURL:FileUrl(s, @"path") readOnly:[s[@"readOnly"] boolValue]];
    VZVirtioFileSystemDeviceConfiguration *fs = [[VZVirtioFileSystemDeviceConfiguration alloc] initWithTag:s[@"tag"]];
    fs.share = [[VZSingleDirectoryShare alloc] initWithDirectory:dir];
    [shares addObject:fs];
  }
  cfg.directorySharingDevices = shares;

  // Console → file (the readiness line is read from it). No NIC at all: SSH and egress use vsock.
  NSFileHandle *log = [NSFileHandle fileHandleForWritingToURL:FileUrl(c, @"consoleLog") error:error];
  if (!log) return nil;
  VZVirtioConsoleDeviceSerialPortConfiguration *console = [[VZVirtioConsoleDeviceSerialPortConfiguration alloc] init];
  console.attachment = [[VZFileHandleSerialPortAttachment alloc] initWithFileHandleForReading:nil fileHandleForWriting:log];
  cfg.serialPorts = @[ console ];
  cfg.socketDevices = @[ [[VZVirtioSocketDeviceConfiguration alloc] init] ];
  cfg.entropyDevices = @[ [[VZVirtioEntropyDeviceConfiguration alloc] init] ];
  cfg.memoryBalloonDevices = @[ [[VZVirtioTraditionalMemoryBalloonDeviceConfiguration alloc] init] ];

  if (![cfg validateWithError:error]) return nil;
  return cfg;
}

static napi_value Create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 1) return Throw(env, "create(configJson) needs the configuration");
  const std::string text = StringArg(env, argv[0]);
  NSData *json = [NSData dataWithBytes:text.data() length:text.size()];
  NSError *error = nil;
  NSDictionary *c = [NSJSONSerialization JSONObjectWithData:json options:0 error:&error];
  if (!c) return Throw(env, "configuration is not valid JSON");
  VZVirtualMachineConfiguration *cfg = BuildConfig(c, &error);
  if (!cfg) return Throw(env, error.localizedDescription.UTF8String ?: "invalid VM configuration");

  auto *vm = new Vm();
  vm->queue = dispatch_queue_create("cowork-vm.vz", DISPATCH_QUEUE_SERIAL);
  vm->machine = [[VZVirtualMachine alloc] initWithConfiguration:cfg queue:vm->queue];
  vm->delegate = [[CVMDelegate alloc] init];
  vm->delegate.vm = vm;
  dispatch_sync(vm->queue, ^{ vm->machine.delegate = vm->delegate; });
  napi_value handle;
  napi_create_external(env, vm, nullptr, nullptr, &handle);
  return handle;
}

// A VZ operation that completes with an NSError, run on the VM's queue, as a JS promise.
typedef void (^VzOperation)(VZVirtualMachine *machine, void (^done)(NSError *err));

static napi_value PromiseOf(napi_env env, napi_callback_info info, const char *name, VzOperation op) {
  size_t argc = 1;
  napi_value argv[1], promise;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  Vm *vm = HandleArg(env, argv[0]);
  auto *c = new Completion();
  napi_create_promise(env, &c->deferred, &promise);
  napi_threadsafe_function fn = OneShot(env, name);
  std::string failure = std::string(name) + " failed";
  dispatch_async(vm->queue, ^{
    op(vm->machine, ^(NSError *err) {
      c->ok = err == nil;
      if (err) c->error = err.localizedDescription.UTF8String ?: failure;
      Finish(fn, c);
    });
  });
  return promise;
}

static napi_value Start(napi_env env, napi_callback_info info) {
  return PromiseOf(env, info, "vz.start", ^(VZVirtualMachine *m, void (^done)(NSError *)) {
    [m startWithCompletionHandler:done];
  });
}

static napi_value RequestStop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  Vm *vm = HandleArg(env, argv[0]);
  __block BOOL ok = NO;
  dispatch_sync(vm->queue, ^{
    NSError *err = nil;
    ok = vm->machine.canRequestStop && [vm->machine requestStopWithError:&err];
  });
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value Stop(napi_env env, napi_callback_info info) {
  return PromiseOf(env, info, "vz.stop", ^(VZVirtualMachine *m, void (^done)(NSError *)) {
    [m stopWithCompletionHandler:done];
  });
}

static napi_value Connect(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], promise;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  Vm *vm = HandleArg(env, argv[0]);
  uint32_t port = 0;
  napi_get_value_uint32(env, argv[1], &port);
  auto *c = new Completion();
  napi_create_promise(env, &c->deferred, &promise);
  napi_threadsafe_function fn = OneShot(env, "vz.connect");
  dispatch_async(vm->queue, ^{
    VZVirtioSocketDevice *dev = (VZVirtioSocketDevice *)vm->machine.socketDevices.firstObject;
    if (!dev) {
      c->ok = false;
      c->error = "the VM has no vsock device";
      Finish(fn, c);
      return;
    }
    [dev connectToPort:port completionHandler:^(VZVirtioSocketConnection *conn, NSError *err) {
      c->ok = conn != nil;
      // The connection object owns its fd and closes it when released: hand JS a dup.
      if (conn) c->fd = dup(conn.fileDescriptor);
      else c->error = err.localizedDescription.UTF8String ?: "vsock connect failed";
      Finish(fn, c);
    }];
  });
  return promise;
}

// Long-lived callbacks (state, listen) carry an int or a C string to JS.
struct Note {
  bool isFd;
  int fd;
  std::string text;
};

static void NoteOnJs(napi_env env, napi_value js_cb, void *, void *data) {
  auto *n = static_cast<Note *>(data);
  if (env != nullptr) {
    napi_value arg, undefined;
    if (n->isFd) napi_create_int32(env, n->fd, &arg);
    else napi_create_string_utf8(env, n->text.c_str(), NAPI_AUTO_LENGTH, &arg);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, js_cb, 1, &arg, nullptr);
  }
  delete n;
}

static napi_threadsafe_function Persistent(napi_env env, napi_value cb, const char *name) {
  napi_value resource;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
  napi_threadsafe_function fn;
  napi_create_threadsafe_function(env, cb, nullptr, resource, 0, 1, nullptr, nullptr, nullptr, NoteOnJs, &fn);
  napi_unref_threadsafe_function(env, fn);
  return fn;
}

static napi_value OnState(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  HandleArg(env, argv[0])->stateFn = Persistent(env, argv[1], "vz.state");
  return nullptr;
}

static napi_value Listen(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  Vm *vm = HandleArg(env, argv[0]);
  uint32_t port = 0;
  napi_get_value_uint32(env, argv[1], &port);
  vm->listenFn = Persistent(env, argv[2], "vz.listen");
  dispatch_sync(vm->queue, ^{
    vm->listener = [[VZVirtioSocketListener alloc] init];
    vm->listener.delegate = vm->delegate;
    VZVirtioSocketDevice *dev = (VZVirtioSocketDevice *)vm->machine.socketDevices.firstObject;
    [dev setSocketListener:vm->listener forPort:port];
  });
  return nullptr;
}

static void Notify(napi_threadsafe_function fn, Note *n) {
  if (fn) napi_call_threadsafe_function(fn, n, napi_tsfn_nonblocking);
  else delete n;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"create", nullptr, Create, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"start", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"requestStop", nullptr, RequestStop, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stop", nullptr, Stop, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"connect", nullptr, Connect, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"listen", nullptr, Listen, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"onState", nullptr, OnState, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

@implementation CVMDelegate
- (void)guestDidStopVirtualMachine:(VZVirtualMachine *)vm {
  Notify(self.vm->stateFn, new Note{false, -1, "stopped"});
}
- (void)virtualMachine:(VZVirtualMachine *)vm didStopWithError:(NSError *)error {
  Notify(self.vm->stateFn, new Note{false, -1, std::string("error:") + (error.localizedDescription.UTF8String ?: "")});
}
- (BOOL)listener:(VZVirtioSocketListener *)listener
    shouldAcceptNewConnection:(VZVirtioSocketConnection *)connection
             fromSocketDevice:(VZVirtioSocketDevice *)socketDevice {
  Notify(self.vm->listenFn, new Note{true, dup(connection.fileDescriptor), ""});
  return YES;
}
@end

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
