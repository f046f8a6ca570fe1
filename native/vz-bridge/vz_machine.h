// vz_machine: one VZVirtualMachine, its serial queue, its delegate and its vsock listener.
// Every VZ call runs on the VM's queue, inside an NSException barrier; results go back through
// js_link. Objects of this class are shared (blocks in flight hold a reference), so nothing dangles
// when JS drops the handle while VZ still has a callback to make.
#pragma once

#import <Foundation/Foundation.h>
#import <Virtualization/Virtualization.h>
#import <dispatch/dispatch.h>

#include <memory>
#include <optional>
#include <set>

#include "js_link.h"
#include "vz_failure.h"

@class CVMDelegate;

namespace vzb {

class Machine : public std::enable_shared_from_this<Machine> {
 public:
  // Creates the VM on its own queue; nullptr and *failure on error or NSException.
  static std::shared_ptr<Machine> Create(VZVirtualMachineConfiguration *config, std::shared_ptr<JsLink> link,
                                         Failure *failure);
  // Close() normally detached everything on the queue; this only covers a Machine that never
  // reached a handle (KVO aborts when an observed object dies with observers attached).
  ~Machine();
  JsLink &link() { return *link_; }

  void Start(std::shared_ptr<Pending> p);
  bool RequestStop();
  void Stop(std::shared_ptr<Pending> p);  // resolves at once when already stopped
  void Connect(uint32_t port, uint32_t timeoutMs, std::shared_ptr<Pending> p);
  std::optional<Failure> Listen(uint32_t port);  // only after Start resolved
  // Detaches the delegate, observer and listeners; force-stops a VM still running (nothing could
  // reach it any more). Idempotent.
  void Close();

  // From CVMDelegate, on whatever thread VZ calls it.
  void StateChanged(VZVirtualMachineState state);
  void GuestStopped();
  void StoppedWithError(NSError *error);
  void Accepted(VZVirtioSocketConnection *connection);

 private:
  Machine() = default;
  void OnQueue(void (^block)(Machine &m));
  dispatch_queue_t queue_ = nil;
  VZVirtualMachine *machine_ = nil;
  CVMDelegate *delegate_ = nil;             // strong: VZ holds its delegates weakly
  VZVirtioSocketListener *listener_ = nil;  // strong for the same reason
  std::shared_ptr<JsLink> link_;
  // Queue-only state.
  bool started_ = false;
  bool closed_ = false;
  bool observing_ = false;
  std::set<uint32_t> ports_;
};

const char *StateName(VZVirtualMachineState state);

}  // namespace vzb
