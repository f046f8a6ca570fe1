// vz_machine: see vz_machine.h.
#include "vz_machine.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

// Every delegate and observer method CVMDelegate implements, by @selector, placed BEFORE
// CVMDelegate's @interface so that -Wundeclared-selector checks each spelling against the
// framework's own protocol declarations (a misspelled optional delegate method is otherwise
// silently never called). CVMDelegate's @interface redeclares each one, so -Wincomplete-implementation
// catches a misspelled implementation. vz_bridge.mm asserts respondsToSelector: on them at load.
static const SEL *CVMDelegateSelectors(size_t *count) {
  static const SEL selectors[] = {
      @selector(guestDidStopVirtualMachine:),
      @selector(virtualMachine:didStopWithError:),
      @selector(listener:shouldAcceptNewConnection:fromSocketDevice:),
      @selector(observeValueForKeyPath:ofObject:change:context:),
  };
  *count = sizeof(selectors) / sizeof(selectors[0]);
  return selectors;
}

static void *kStateContext = &kStateContext;

@interface CVMDelegate : NSObject <VZVirtualMachineDelegate, VZVirtioSocketListenerDelegate>
- (instancetype)initWithMachine:(std::weak_ptr<vzb::Machine>)machine;
- (void)guestDidStopVirtualMachine:(VZVirtualMachine *)virtualMachine;
- (void)virtualMachine:(VZVirtualMachine *)virtualMachine didStopWithError:(NSError *)error;
- (BOOL)listener:(VZVirtioSocketListener *)listener
    shouldAcceptNewConnection:(VZVirtioSocketConnection *)connection
             fromSocketDevice:(VZVirtioSocketDevice *)socketDevice;
- (void)observeValueForKeyPath:(NSString *)keyPath
                      ofObject:(id)object
                        change:(NSDictionary<NSKeyValueChangeKey, id> *)change
                       context:(void *)context;
@end

@implementation CVMDelegate {
  std::weak_ptr<vzb::Machine> _machine;  // weak: the Machine owns this delegate
}
- (instancetype)initWithMachine:(std::weak_ptr<vzb::Machine>)machine {
  if ((self = [super init])) _machine = machine;
  return self;
}
- (void)guestDidStopVirtualMachine:(VZVirtualMachine *)virtualMachine {
  if (auto m = _machine.lock()) m->GuestStopped();
}
- (void)virtualMachine:(VZVirtualMachine *)virtualMachine didStopWithError:(NSError *)error {
  if (auto m = _machine.lock()) m->StoppedWithError(error);
}
- (BOOL)listener:(VZVirtioSocketListener *)listener
    shouldAcceptNewConnection:(VZVirtioSocketConnection *)connection
             fromSocketDevice:(VZVirtioSocketDevice *)socketDevice {
  auto m = _machine.lock();
  if (!m) return NO;
  m->Accepted(connection);
  return YES;
}
- (void)observeValueForKeyPath:(NSString *)keyPath
                      ofObject:(id)object
                        change:(NSDictionary<NSKeyValueChangeKey, id> *)change
                       context:(void *)context {
  if (context != kStateContext) {
    [super observeValueForKeyPath:keyPath ofObject:object change:change context:context];
    return;
  }
  if (auto m = _machine.lock()) m->StateChanged(((VZVirtualMachine *)object).state);
}
@end

namespace vzb {

bool DelegateImplementsAll(std::string *missing) {
  size_t count = 0;
  const SEL *selectors = CVMDelegateSelectors(&count);
  for (size_t i = 0; i < count; i++) {
    if (![CVMDelegate instancesRespondToSelector:selectors[i]]) {
      *missing = NSStringFromSelector(selectors[i]).UTF8String ?: "?";
      return false;
    }
  }
  return true;
}

const char *StateName(VZVirtualMachineState state) {
  switch (state) {
    case VZVirtualMachineStateStopped: return "stopped";
    case VZVirtualMachineStateRunning: return "running";
    case VZVirtualMachineStatePaused: return "paused";
    case VZVirtualMachineStateError: return "error";
    case VZVirtualMachineStateStarting: return "starting";
    case VZVirtualMachineStateStopping: return "stopping";
    default: return nullptr;  // pausing, resuming, saving, restoring: not part of VzState
  }
}

static Failure Refused(const char *op, VZVirtualMachine *m) {
  const char *state = StateName(m.state);
  return Failure{"VZ_INVALID_STATE", std::string(op) + ": VZ cannot do this while the VM is " + (state ? state : "busy")};
}

std::shared_ptr<Machine> Machine::Create(VZVirtualMachineConfiguration *config, std::shared_ptr<JsLink> link,
                                         Failure *failure) {
  std::shared_ptr<Machine> self(new Machine());
  self->link_ = std::move(link);
  self->queue_ = dispatch_queue_create("cowork-vm.vz", DISPATCH_QUEUE_SERIAL);
  self->delegate_ = [[CVMDelegate alloc] initWithMachine:self];
  __block Failure error;
  Machine *m = self.get();
  dispatch_sync(self->queue_, ^{
    @try {
      m->machine_ = [[VZVirtualMachine alloc] initWithConfiguration:config queue:m->queue_];
      m->machine_.delegate = m->delegate_;
      [m->machine_ addObserver:m->delegate_
                    forKeyPath:@"state"
                       options:NSKeyValueObservingOptionNew
                       context:kStateContext];
      m->observing_ = true;
    } @catch (NSException *exception) {
      error = FromException("creating the VZVirtualMachine", exception);
    }
  });
  if (!error.code.empty()) {
    *failure = error;
    self->Close();
    return nullptr;
  }
  return self;
}

Machine::~Machine() {
  @try {
    if (observing_) [machine_ removeObserver:delegate_ forKeyPath:@"state" context:kStateContext];
    machine_.delegate = nil;
  } @catch (NSException *) {
    // A destructor must not throw; the VM object is released with this one either way.
  }
}

// Runs block on the VM queue, keeping this Machine alive until it has run. Exceptions stop at the
// block's edge (see the callers); nothing C++ or Objective-C may unwind through libdispatch.
void Machine::OnQueue(void (^block)(Machine &m)) {
  std::shared_ptr<Machine> self = shared_from_this();
  dispatch_async(queue_, ^{
    block(*self);
  });
}

void Machine::Start(std::shared_ptr<Pending> p) {
  OnQueue(^(Machine &m) {
    @try {
      if (!m.machine_.canStart) {
        p->Reject(Refused("start", m.machine_));
        return;
      }
      std::shared_ptr<Machine> keep = m.shared_from_this();
      [m.machine_ startWithCompletionHandler:^(NSError *_Nullable error) {
        if (error) {
          p->Reject(FromNSError("start", error));
          return;
        }
        keep->started_ = true;
        keep->link_->Report("running");
        p->Resolve();
      }];
    } @catch (NSException *exception) {
      p->Reject(FromException("start", exception));
    }
  });
}

bool Machine::RequestStop() {
  __block BOOL ok = NO;
  Machine *m = this;
  dispatch_sync(queue_, ^{
    @try {
      NSError *error = nil;
      ok = m->machine_.canRequestStop && [m->machine_ requestStopWithError:&error];
    } @catch (NSException *) {
      ok = NO;  // the contract: false when VZ cannot ask the guest
    }
  });
  return ok;
}

void Machine::Stop(std::shared_ptr<Pending> p) {
  OnQueue(^(Machine &m) {
    @try {
      VZVirtualMachineState state = m.machine_.state;
      if (state == VZVirtualMachineStateStopped || state == VZVirtualMachineStateError) {
        p->Resolve();
        return;
      }
      if (!m.machine_.canStop) {
        p->Reject(Refused("stop", m.machine_));
        return;
      }
      std::shared_ptr<Machine> keep = m.shared_from_this();
      [m.machine_ stopWithCompletionHandler:^(NSError *_Nullable error) {
        if (error) {
          p->Reject(FromNSError("stop", error));
          return;
        }
        keep->link_->Report("stopped");
        p->Resolve();
      }];
    } @catch (NSException *exception) {
      p->Reject(FromException("stop", exception));
    }
  });
}

static VZVirtioSocketDevice *SocketDevice(VZVirtualMachine *m) {
  for (VZSocketDevice *d in m.socketDevices) {
    if ([d isKindOfClass:[VZVirtioSocketDevice class]]) return (VZVirtioSocketDevice *)d;
  }
  return nil;
}

void Machine::Connect(uint32_t port, uint32_t timeoutMs, std::shared_ptr<Pending> p) {
  OnQueue(^(Machine &m) {
    VZVirtioSocketDevice *device = m.started_ ? SocketDevice(m.machine_) : nil;
    if (!device) {
      p->Reject({"VZ_INVALID_STATE", m.started_ ? "connect: the VM has no vsock device" : "connect: the VM is not started"});
      return;
    }
    // connectToPort: never calls back while nothing listens in the guest: the timer settles
    // instead. Pending settles once; whichever of the two comes second is a no-op.
    std::string timeout = "connect: nothing answered on guest vsock port " + std::to_string(port) + " within " +
                          std::to_string(timeoutMs) + " ms";
    dispatch_after(dispatch_time(DISPATCH_TIME_NOW, (int64_t)timeoutMs * (int64_t)NSEC_PER_MSEC), m.queue_, ^{
      p->Reject({"ETIMEDOUT", timeout});
    });
    @try {
      [device connectToPort:port
          completionHandler:^(VZVirtioSocketConnection *_Nullable connection, NSError *_Nullable error) {
            if (!connection) {
              p->Reject(FromNSError("connect to guest port " + std::to_string(port), error));
              return;
            }
            // The connection owns its descriptor and closes it with itself: JS gets a CLOEXEC dup.
            int fd = fcntl(connection.fileDescriptor, F_DUPFD_CLOEXEC, 0);
            int err = errno;
            [connection close];
            if (fd < 0) p->Reject({"VZ_ERROR", std::string("connect: cannot duplicate the vsock fd: ") + std::strerror(err)});
            else p->ResolveFd(fd);  // closes fd itself when the timeout already won
          }];
    } @catch (NSException *exception) {
      p->Reject(FromException("connect", exception));
    }
  });
}

std::optional<Failure> Machine::Listen(uint32_t port) {
  __block std::optional<Failure> failure;
  Machine *m = this;
  dispatch_sync(queue_, ^{
    VZVirtioSocketDevice *device = m->started_ ? SocketDevice(m->machine_) : nil;
    if (m->closed_ || !device) {
      failure = Failure{"VZ_INVALID_STATE", m->started_ ? "listen: the VM has no vsock device"
                                                         : "listen: only after start() resolved"};
      return;
    }
    @try {
      if (!m->listener_) {
        m->listener_ = [[VZVirtioSocketListener alloc] init];
        m->listener_.delegate = m->delegate_;
      }
      [device setSocketListener:m->listener_ forPort:port];
      m->ports_.insert(port);
    } @catch (NSException *exception) {
      failure = FromException("listen", exception);
    }
  });
  return failure;
}

void Machine::Close() {
  link_->Release();
  OnQueue(^(Machine &m) {
    if (m.closed_) return;
    m.closed_ = true;
    @try {
      if (!m.machine_) return;
      VZVirtioSocketDevice *device = SocketDevice(m.machine_);
      for (uint32_t port : m.ports_) [device removeSocketListenerForPort:port];
      m.ports_.clear();
      if (m.observing_) [m.machine_ removeObserver:m.delegate_ forKeyPath:@"state" context:kStateContext];
      m.observing_ = false;
      m.machine_.delegate = nil;
      if (m.machine_.canStop) {
        std::shared_ptr<Machine> keep = m.shared_from_this();
        [m.machine_ stopWithCompletionHandler:^(NSError *_Nullable) {
          (void)keep;  // the VM object lives until VZ is done with it
        }];
      }
    } @catch (NSException *) {
      // Nothing to report to: the handle is dead. The VM object goes with the last reference.
    }
  });
}

void Machine::StateChanged(VZVirtualMachineState state) {
  const char *name = StateName(state);
  // Error is reported by virtualMachine:didStopWithError:, which carries the reason.
  if (name && state != VZVirtualMachineStateError) link_->Report(name);
}

void Machine::GuestStopped() { link_->Report("stopped"); }

void Machine::StoppedWithError(NSError *error) {
  const char *text = error.localizedDescription.UTF8String;
  link_->Report("error", text && *text ? text : "the VM stopped with an unknown error");
}

void Machine::Accepted(VZVirtioSocketConnection *connection) {
  int fd = fcntl(connection.fileDescriptor, F_DUPFD_CLOEXEC, 0);
  uint32_t port = connection.destinationPort;
  [connection close];
  if (fd >= 0) link_->DeliverConnection(port, fd);
}

}  // namespace vzb
