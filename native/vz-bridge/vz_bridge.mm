// vz-bridge: the flat JS surface over Apple's Virtualization.framework (macOS 13+), on node-addon-api.
// It implements exactly `VzBridge` in src/host/vm/vz/native.ts:
//   isSupported() -> boolean                     [VZVirtualMachine isSupported]
//   create(configJson) -> handle                 validate + build the VM on its own serial queue (throws, naming the field)
//   start(h) -> Promise<void>                    startWithCompletionHandler:
//   requestStop(h) -> boolean                    VZ's power button (ACPI on Intel, PL061 GPIO on Apple silicon)
//   stop(h) -> Promise<void>                     forced stop; resolves at once when already stopped
//   connect(h, port, timeoutMs) -> Promise<fd>   vsock to a guest port; CLOEXEC fd; rejects (code ETIMEDOUT) after timeoutMs
//   listen(h, port, cb(fd))                      guest→host vsock on `port`; only after start() resolved
//   onState(h, cb(state, detail?))               VzState names; 'error' carries the NSError's text
//   close(h)                                     releases callbacks and listeners (force-stops a VM still running)
// No Objective-C exception crosses into N-API: every VZ call is inside @try/@catch and becomes a JS
// Error (code VZ_EXCEPTION, message naming the exception and its reason).
//
// The process loading this addon needs the com.apple.security.virtualization entitlement (the driver
// runs it in a child process started from a signed copy of node).
//
// NEVER BUILT OR RUN ON A MAC in this project. CI only syntax- and type-checks it with clang against
// the hand-written headers in stubs/ (scripts/check-native.sh). See README.md.
#include <napi.h>

#include <cmath>
#include <memory>
#include <string>

#include "js_link.h"
#include "vm_config.h"
#include "vz_machine.h"

namespace vzb {

bool DelegateImplementsAll(std::string *missing);  // vz_machine.mm

namespace {

// Marks externals made by create(), so a foreign External is refused instead of reinterpreted.
const napi_type_tag kHandleTag = {0x636f776f726b766dULL, 0x767a68616e646c65ULL};

struct Handle {
  std::shared_ptr<Machine> machine;
  bool closed = false;
};

struct Instance {
  std::shared_ptr<EnvGuard> guard;
};

std::shared_ptr<EnvGuard> GuardOf(Napi::Env env) { return env.GetInstanceData<Instance>()->guard; }

[[noreturn]] void BadArgument(Napi::Env env, const std::string &message) {
  Throw(env, Failure{"VZ_INVALID_ARGUMENT", message});
}

Handle &HandleArg(const Napi::CallbackInfo &info, const char *fn) {
  Napi::Env env = info.Env();
  Napi::Value v = info[0];
  if (!v.IsExternal() || !v.As<Napi::External<Handle>>().CheckTypeTag(&kHandleTag)) {
    BadArgument(env, std::string(fn) + ": the first argument is not a VM handle from create()");
  }
  Handle *h = v.As<Napi::External<Handle>>().Data();
  if (h->closed) Throw(env, Failure{"VZ_CLOSED", std::string(fn) + ": the VM handle is closed"});
  return *h;
}

uint32_t UintArg(const Napi::CallbackInfo &info, size_t i, const char *what, double min) {
  Napi::Value v = info[i];
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d >= min && d <= 4294967295.0 && std::floor(d) == d)) {
    BadArgument(info.Env(), std::string(what) + " must be a whole number from " + std::to_string((int)min) +
                                " to 4294967295");
  }
  return static_cast<uint32_t>(d);
}

Napi::Function FunctionArg(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (!info[i].IsFunction()) BadArgument(info.Env(), std::string(what) + " must be a function");
  return info[i].As<Napi::Function>();
}

Napi::Value IsSupported(const Napi::CallbackInfo &info) {
  BOOL supported = NO;
  @try {
    supported = [VZVirtualMachine isSupported];
  } @catch (NSException *) {
    supported = NO;
  }
  return Napi::Boolean::New(info.Env(), supported);
}

Napi::Value Create(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) BadArgument(env, "create(configJson): configJson must be a JSON string");
  VmConfig config = ParseConfig(env, info[0].As<Napi::String>().Utf8Value());
  Failure failure;
  VZVirtualMachineConfiguration *vz = BuildConfiguration(config, &failure);
  if (!vz) Throw(env, failure);
  std::shared_ptr<Machine> machine = Machine::Create(vz, JsLink::Create(GuardOf(env)), &failure);
  if (!machine) Throw(env, failure);
  auto handle = Napi::External<Handle>::New(env, new Handle{machine}, [](Napi::Env, Handle *h) {
    if (!h->closed) h->machine->Close();  // dropped without close(): nothing could reach the VM again
    delete h;
  });
  handle.TypeTag(&kHandleTag);
  return handle;
}

Napi::Value Start(const Napi::CallbackInfo &info) {
  Handle &h = HandleArg(info, "start");
  auto p = std::make_shared<Pending>(info.Env(), GuardOf(info.Env()), "vz.start");
  h.machine->Start(p);
  return p->Promise();
}

Napi::Value RequestStop(const Napi::CallbackInfo &info) {
  Handle &h = HandleArg(info, "requestStop");
  return Napi::Boolean::New(info.Env(), h.machine->RequestStop());
}

Napi::Value Stop(const Napi::CallbackInfo &info) {
  Handle &h = HandleArg(info, "stop");
  auto p = std::make_shared<Pending>(info.Env(), GuardOf(info.Env()), "vz.stop");
  h.machine->Stop(p);
  return p->Promise();
}

Napi::Value Connect(const Napi::CallbackInfo &info) {
  Handle &h = HandleArg(info, "connect");
  uint32_t port = UintArg(info, 1, "connect: port", 0);
  uint32_t timeoutMs = UintArg(info, 2, "connect: timeoutMs", 1);
  auto p = std::make_shared<Pending>(info.Env(), GuardOf(info.Env()), "vz.connect");
  h.machine->Connect(port, timeoutMs, p);
  return p->Promise();
}

Napi::Value Listen(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Handle &h = HandleArg(info, "listen");
  uint32_t port = UintArg(info, 1, "listen: port", 0);
  Napi::Function cb = FunctionArg(info, 2, "listen: onConnection");
  if (auto failure = h.machine->link().AddListener(env, port, cb)) Throw(env, *failure);
  if (auto failure = h.machine->Listen(port)) {
    h.machine->link().RemoveListener(port);
    Throw(env, *failure);
  }
  return env.Undefined();
}

Napi::Value OnState(const Napi::CallbackInfo &info) {
  Handle &h = HandleArg(info, "onState");
  h.machine->link().SetStateCallback(info.Env(), FunctionArg(info, 1, "onState: cb"));
  return info.Env().Undefined();
}

Napi::Value Close(const Napi::CallbackInfo &info) {
  Handle &h = HandleArg(info, "close");
  h.closed = true;
  h.machine->Close();
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  std::string missing;
  if (!DelegateImplementsAll(&missing)) {
    Throw(env, Failure{"VZ_BROKEN_BUILD", "vz-bridge was built without the delegate method " + missing});
  }
  env.SetInstanceData<Instance>(new Instance{EnvGuard::Install(env)});
  exports.Set("isSupported", Napi::Function::New(env, IsSupported, "isSupported"));
  exports.Set("create", Napi::Function::New(env, Create, "create"));
  exports.Set("start", Napi::Function::New(env, Start, "start"));
  exports.Set("requestStop", Napi::Function::New(env, RequestStop, "requestStop"));
  exports.Set("stop", Napi::Function::New(env, Stop, "stop"));
  exports.Set("connect", Napi::Function::New(env, Connect, "connect"));
  exports.Set("listen", Napi::Function::New(env, Listen, "listen"));
  exports.Set("onState", Napi::Function::New(env, OnState, "onState"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  return exports;
}

}  // namespace
}  // namespace vzb

static Napi::Object InitVzBridge(Napi::Env env, Napi::Object exports) { return vzb::Init(env, exports); }

NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitVzBridge)
