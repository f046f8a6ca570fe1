// js_link: thread-safe functions and promises between VZ's threads and JS. See js_link.h.
#include "js_link.h"

#include <unistd.h>

namespace vzb {

struct Outcome {
  explicit Outcome(Napi::Promise::Deferred d) : deferred(d) {}
  Napi::Promise::Deferred deferred;
  bool ok = false;
  int fd = -1;  // owned until JS has it
  Failure failure;
};

struct StateNote {
  std::string state;
  std::string detail;
};

struct ConnNote {
  int fd;  // owned until JS has it
};

static void Discard(Outcome *o) {
  if (o->fd >= 0) close(o->fd);
  delete o;
}

Napi::Error ToJsError(Napi::Env env, const Failure &f) {
  Napi::Error e = Napi::Error::New(env, f.message);
  e.Set("code", Napi::String::New(env, f.code));
  return e;
}

void Throw(Napi::Env env, const Failure &f) { throw ToJsError(env, f); }

static void TeardownHook(void *arg) {
  auto *holder = static_cast<std::shared_ptr<EnvGuard> *>(arg);
  EnvGuard &g = **holder;
  {
    std::lock_guard<std::mutex> lock(g.mu);
    for (auto &weak : g.links) {
      if (auto link = weak.lock()) link->ReleaseLocked();
    }
    g.links.clear();
    g.alive = false;
  }
  delete holder;
}

std::shared_ptr<EnvGuard> EnvGuard::Install(Napi::Env env) {
  auto guard = std::make_shared<EnvGuard>();
  napi_status s = napi_add_env_cleanup_hook(env, TeardownHook, new std::shared_ptr<EnvGuard>(guard));
  NAPI_THROW_IF_FAILED(env, s, guard);
  return guard;
}

// ---- one-shot promises ----

void SettleOnJs(Napi::Env env, Napi::Function, void *, Outcome *o) {
  if (static_cast<napi_env>(env) == nullptr) {  // queue drained at teardown: nobody to tell
    Discard(o);
    return;
  }
  std::unique_ptr<Outcome> owned(o);
  if (!o->ok) {
    o->deferred.Reject(ToJsError(env, o->failure).Value());
    return;
  }
  if (o->fd < 0) {
    o->deferred.Resolve(env.Undefined());
    return;
  }
  int fd = o->fd;
  o->fd = -1;  // JS owns it from here
  o->deferred.Resolve(Napi::Number::New(env, fd));
}

Pending::Pending(Napi::Env env, std::shared_ptr<EnvGuard> guard, const char *name)
    : guard_(std::move(guard)),
      fn_(SettleFn::New(env, name, 0, 1)),
      deferred_(Napi::Promise::Deferred::New(env)) {}

Pending::~Pending() {
  std::lock_guard<std::mutex> lock(guard_->mu);
  if (!settled_ && guard_->alive) fn_.Release();
}

bool Pending::Settle(Outcome *o) {
  std::lock_guard<std::mutex> lock(guard_->mu);
  if (settled_ || !guard_->alive) {  // the other settler won, or the env (and fn_) is gone
    Discard(o);
    return false;
  }
  settled_ = true;
  // Unbounded queue (max size 0): BlockingCall never blocks a VZ thread.
  napi_status s = fn_.BlockingCall(o);
  if (s != napi_ok) Discard(o);
  // After napi_closing the function is being torn down by Node and must not be touched again.
  if (s != napi_closing) fn_.Release();
  return s == napi_ok;
}

bool Pending::Resolve() {
  auto *o = new Outcome(deferred_);
  o->ok = true;
  return Settle(o);
}

bool Pending::ResolveFd(int fd) {
  auto *o = new Outcome(deferred_);
  o->ok = true;
  o->fd = fd;
  return Settle(o);
}

bool Pending::Reject(Failure f) {
  auto *o = new Outcome(deferred_);
  o->failure = std::move(f);
  return Settle(o);
}

// ---- long-lived callbacks ----

void DeliverState(Napi::Env env, Napi::Function cb, void *, StateNote *n) {
  std::unique_ptr<StateNote> owned(n);
  if (static_cast<napi_env>(env) == nullptr || cb.IsEmpty()) return;
  if (n->detail.empty()) cb.Call({Napi::String::New(env, n->state)});
  else cb.Call({Napi::String::New(env, n->state), Napi::String::New(env, n->detail)});
}

void DeliverConn(Napi::Env env, Napi::Function cb, void *, ConnNote *n) {
  std::unique_ptr<ConnNote> owned(n);
  if (static_cast<napi_env>(env) == nullptr || cb.IsEmpty()) {
    close(n->fd);
    return;
  }
  cb.Call({Napi::Number::New(env, n->fd)});  // the callback owns the fd now
}

std::shared_ptr<JsLink> JsLink::Create(std::shared_ptr<EnvGuard> guard) {
  std::shared_ptr<JsLink> link(new JsLink(guard));
  std::lock_guard<std::mutex> lock(guard->mu);
  guard->links.push_back(link);
  return link;
}

void JsLink::SetStateCallback(Napi::Env env, Napi::Function cb) {
  StateFn fn = StateFn::New(env, cb, "vz.onState", 0, 1);
  fn.Unref(env);  // a state callback alone must not keep the process alive
  std::lock_guard<std::mutex> lock(guard_->mu);
  if (released_ || !guard_->alive) {
    fn.Release();
    return;
  }
  if (state_) state_->Release();
  state_ = fn;
}

std::optional<Failure> JsLink::AddListener(Napi::Env env, uint32_t port, Napi::Function cb) {
  std::lock_guard<std::mutex> lock(guard_->mu);
  if (released_) return Failure{"VZ_CLOSED", "listen: the VM handle is closed"};
  if (conns_.count(port)) {
    return Failure{"VZ_INVALID_ARGUMENT", "listen: port " + std::to_string(port) + " already has a listener"};
  }
  ConnFn fn = ConnFn::New(env, cb, "vz.listen", 0, 1);
  fn.Unref(env);
  conns_.emplace(port, fn);
  return std::nullopt;
}

void JsLink::RemoveListener(uint32_t port) {
  std::lock_guard<std::mutex> lock(guard_->mu);
  auto it = conns_.find(port);
  if (it == conns_.end()) return;
  it->second.Release();
  conns_.erase(it);
}

void JsLink::Report(const std::string &state, const std::string &detail) {
  std::lock_guard<std::mutex> lock(guard_->mu);
  if (state == last_ && detail.empty()) return;
  last_ = state;
  if (released_ || !guard_->alive || !state_) return;
  auto *n = new StateNote{state, detail};
  if (state_->BlockingCall(n) != napi_ok) delete n;
}

void JsLink::DeliverConnection(uint32_t port, int fd) {
  std::lock_guard<std::mutex> lock(guard_->mu);
  auto it = conns_.find(port);
  if (released_ || !guard_->alive || it == conns_.end()) {
    close(fd);
    return;
  }
  auto *n = new ConnNote{fd};
  if (it->second.BlockingCall(n) != napi_ok) {
    close(fd);
    delete n;
  }
}

void JsLink::ReleaseLocked() {
  if (released_) return;
  released_ = true;
  if (guard_->alive) {
    if (state_) state_->Release();
    for (auto &entry : conns_) entry.second.Release();
  }
  state_.reset();
  conns_.clear();
}

void JsLink::Release() {
  std::lock_guard<std::mutex> lock(guard_->mu);
  ReleaseLocked();
}

}  // namespace vzb
