// js_link: how results travel from Virtualization.framework's threads to the JS thread.
//
// Lifetimes, explicitly (issue 14, defect 9):
//  - A Pending promise owns a one-shot, ref'd TypedThreadSafeFunction: a pending start/stop/connect
//    keeps the event loop alive like a timer would. It is released right after its one call.
//  - A JsLink (one per VM) owns the long-lived, unref'd callbacks (onState, one per listen port).
//    They are released by close() and by the env cleanup hook, so the process can exit.
//  - EnvGuard says whether the env still exists. Node deletes every thread-safe function after the
//    cleanup hooks ran, so nothing may touch one once `alive` is false; the hook flips it.
// Every payload that cannot be delivered (env gone, napi_closing, a failed call) is freed here
// and any file descriptor in it is closed: no leak on any path.
#pragma once

#include <napi.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace vzb {

// What went wrong; `code` becomes the JS Error's `code` property.
struct Failure {
  std::string code;
  std::string message;
};

Napi::Error ToJsError(Napi::Env env, const Failure &f);
[[noreturn]] void Throw(Napi::Env env, const Failure &f);

class JsLink;

// One per napi_env: whether JS may still be called, and the links to release on teardown.
struct EnvGuard {
  std::mutex mu;  // guards every field here and the mutable state of every JsLink / Pending
  bool alive = true;
  std::vector<std::weak_ptr<JsLink>> links;

  // Registers the cleanup hook; the returned guard lives as long as anything holds it.
  static std::shared_ptr<EnvGuard> Install(Napi::Env env);
};

struct Outcome;
void SettleOnJs(Napi::Env env, Napi::Function unused, void *context, Outcome *o);
using SettleFn = Napi::TypedThreadSafeFunction<void, Outcome, SettleOnJs>;

// A JS promise that exactly one of its settlers (completion, timeout, exception) settles, from any thread.
class Pending {
 public:
  Pending(Napi::Env env, std::shared_ptr<EnvGuard> guard, const char *name);
  // Never settled (should not happen): let go of the loop rather than hold it forever.
  ~Pending();
  Pending(const Pending &) = delete;
  Pending &operator=(const Pending &) = delete;
  Napi::Promise Promise() const { return deferred_.Promise(); }
  bool Resolve();
  // Takes ownership of fd: delivered to JS, or closed when the promise is already settled.
  bool ResolveFd(int fd);
  bool Reject(Failure f);

 private:
  bool Settle(Outcome *o);
  std::shared_ptr<EnvGuard> guard_;
  SettleFn fn_;
  Napi::Promise::Deferred deferred_;
  bool settled_ = false;
};

struct StateNote;
struct ConnNote;
void DeliverState(Napi::Env env, Napi::Function cb, void *context, StateNote *n);
void DeliverConn(Napi::Env env, Napi::Function cb, void *context, ConnNote *n);
using StateFn = Napi::TypedThreadSafeFunction<void, StateNote, DeliverState>;
using ConnFn = Napi::TypedThreadSafeFunction<void, ConnNote, DeliverConn>;

// The long-lived callbacks of one VM.
class JsLink {
 public:
  static std::shared_ptr<JsLink> Create(std::shared_ptr<EnvGuard> guard);
  const std::shared_ptr<EnvGuard> &guard() const { return guard_; }

  // JS thread. Replaces an earlier onState callback.
  void SetStateCallback(Napi::Env env, Napi::Function cb);
  // JS thread. Fails when the port already has a callback or the link is released.
  std::optional<Failure> AddListener(Napi::Env env, uint32_t port, Napi::Function cb);
  // JS thread: undoes AddListener when VZ refused the listener.
  void RemoveListener(uint32_t port);

  // Any thread. Drops a repeat of the last state (KVO and the delegate both report a stop).
  void Report(const std::string &state, const std::string &detail = "");
  // Any thread. Takes ownership of fd; closes it when nobody can receive it.
  void DeliverConnection(uint32_t port, int fd);

  // close() and env teardown: releases every callback; later reports are dropped.
  void Release();
  void ReleaseLocked();  // caller holds guard()->mu

 private:
  explicit JsLink(std::shared_ptr<EnvGuard> guard) : guard_(std::move(guard)) {}
  std::shared_ptr<EnvGuard> guard_;
  bool released_ = false;
  std::optional<StateFn> state_;
  std::map<uint32_t, ConnFn> conns_;
  std::string last_;
};

}  // namespace vzb
