// STUB, NOT APPLE'S HEADER. The part of Virtualization.framework that native/vz-bridge uses,
// hand-written from https://developer.apple.com/documentation/virtualization so that
// scripts/check-native.sh can check selector spellings, block signatures, nullability and
// availability on Linux. Each declaration names its documentation page and carries the macOS
// version that introduced it; the bridge's deployment target is macOS 13, so anything marked 14+
// must sit inside `if (@available(macOS 14, *))`. A few newer APIs the bridge does NOT use are
// declared too, so the check has something to refuse (tests/unit/native-check.test.ts).
#pragma once

#import <Foundation/Foundation.h>
#import <dispatch/dispatch.h>

NS_ASSUME_NONNULL_BEGIN


// ---- boot loader ----
// https://developer.apple.com/documentation/virtualization/vzbootloader
API_AVAILABLE(macos(11.0)) @interface VZBootLoader : NSObject
- (instancetype)init NS_UNAVAILABLE;
@end

// https://developer.apple.com/documentation/virtualization/vzlinuxbootloader
API_AVAILABLE(macos(11.0)) @interface VZLinuxBootLoader : VZBootLoader
// https://developer.apple.com/documentation/virtualization/vzlinuxbootloader/init(kernelurl:)
- (instancetype)initWithKernelURL:(NSURL *)kernelURL NS_DESIGNATED_INITIALIZER;
// https://developer.apple.com/documentation/virtualization/vzlinuxbootloader/commandline
@property(copy) NSString *commandLine;
// https://developer.apple.com/documentation/virtualization/vzlinuxbootloader/initialramdiskurl
@property(nullable, copy) NSURL *initialRamdiskURL;
@end

// ---- storage ----
// https://developer.apple.com/documentation/virtualization/vzstoragedeviceattachment
API_AVAILABLE(macos(11.0)) @interface VZStorageDeviceAttachment : NSObject
- (instancetype)init NS_UNAVAILABLE;
@end

// https://developer.apple.com/documentation/virtualization/vzdiskimagestoragedeviceattachment
API_AVAILABLE(macos(11.0)) @interface VZDiskImageStorageDeviceAttachment : VZStorageDeviceAttachment
// https://developer.apple.com/documentation/virtualization/vzdiskimagestoragedeviceattachment/init(url:readonly:)
- (nullable instancetype)initWithURL:(NSURL *)url readOnly:(BOOL)readOnly error:(NSError **)error;
@end

// https://developer.apple.com/documentation/virtualization/vzstoragedeviceconfiguration
API_AVAILABLE(macos(11.0)) @interface VZStorageDeviceConfiguration : NSObject
- (instancetype)init NS_UNAVAILABLE;
@end

// https://developer.apple.com/documentation/virtualization/vzvirtioblockdeviceconfiguration
API_AVAILABLE(macos(11.0)) @interface VZVirtioBlockDeviceConfiguration : VZStorageDeviceConfiguration
// https://developer.apple.com/documentation/virtualization/vzvirtioblockdeviceconfiguration/init(attachment:)
- (instancetype)initWithAttachment:(VZStorageDeviceAttachment *)attachment NS_DESIGNATED_INITIALIZER;
@end

// ---- directory sharing (virtio-fs) ----
// https://developer.apple.com/documentation/virtualization/vzshareddirectory
API_AVAILABLE(macos(12.0)) @interface VZSharedDirectory : NSObject
- (instancetype)init NS_UNAVAILABLE;
// https://developer.apple.com/documentation/virtualization/vzshareddirectory/init(url:readonly:)
- (instancetype)initWithURL:(NSURL *)url readOnly:(BOOL)readOnly NS_DESIGNATED_INITIALIZER;
@end

// https://developer.apple.com/documentation/virtualization/vzdirectoryshare
API_AVAILABLE(macos(12.0)) @interface VZDirectoryShare : NSObject
- (instancetype)init NS_UNAVAILABLE;
@end

// https://developer.apple.com/documentation/virtualization/vzsingledirectoryshare
API_AVAILABLE(macos(12.0)) @interface VZSingleDirectoryShare : VZDirectoryShare
// https://developer.apple.com/documentation/virtualization/vzsingledirectoryshare/init(directory:)
- (instancetype)initWithDirectory:(VZSharedDirectory *)directory NS_DESIGNATED_INITIALIZER;
@end

// https://developer.apple.com/documentation/virtualization/vzdirectorysharingdeviceconfiguration
API_AVAILABLE(macos(12.0)) @interface VZDirectorySharingDeviceConfiguration : NSObject
- (instancetype)init NS_UNAVAILABLE;
@end

// https://developer.apple.com/documentation/virtualization/vzvirtiofilesystemdeviceconfiguration
API_AVAILABLE(macos(12.0))
@interface VZVirtioFileSystemDeviceConfiguration : VZDirectorySharingDeviceConfiguration
// https://developer.apple.com/documentation/virtualization/vzvirtiofilesystemdeviceconfiguration/init(tag:)
// Raises NSInvalidArgumentException on an invalid tag: validate first.
- (instancetype)initWithTag:(NSString *)tag NS_DESIGNATED_INITIALIZER;
// https://developer.apple.com/documentation/virtualization/vzvirtiofilesystemdeviceconfiguration/validatetag(_:)
+ (BOOL)validateTag:(NSString *)tag error:(NSError **)error;
// https://developer.apple.com/documentation/virtualization/vzvirtiofilesystemdeviceconfiguration/share
@property(nullable, strong) VZDirectoryShare *share;
@end

// ---- serial console ----
// https://developer.apple.com/documentation/virtualization/vzserialportattachment
API_AVAILABLE(macos(11.0)) @interface VZSerialPortAttachment : NSObject
- (instancetype)init NS_UNAVAILABLE;
@end

// https://developer.apple.com/documentation/virtualization/vzfilehandleserialportattachment
API_AVAILABLE(macos(11.0)) @interface VZFileHandleSerialPortAttachment : VZSerialPortAttachment
// https://developer.apple.com/documentation/virtualization/vzfilehandleserialportattachment/init(filehandleforreading:filehandleforwriting:)
- (instancetype)initWithFileHandleForReading:(nullable NSFileHandle *)fileHandleForReading
                        fileHandleForWriting:(nullable NSFileHandle *)fileHandleForWriting NS_DESIGNATED_INITIALIZER;
@end

// https://developer.apple.com/documentation/virtualization/vzserialportconfiguration
API_AVAILABLE(macos(11.0)) @interface VZSerialPortConfiguration : NSObject
- (instancetype)init NS_UNAVAILABLE;
// https://developer.apple.com/documentation/virtualization/vzserialportconfiguration/attachment
@property(nullable, strong) VZSerialPortAttachment *attachment;
@end

// https://developer.apple.com/documentation/virtualization/vzvirtioconsoledeviceserialportconfiguration
API_AVAILABLE(macos(11.0))
@interface VZVirtioConsoleDeviceSerialPortConfiguration : VZSerialPortConfiguration
- (instancetype)init NS_DESIGNATED_INITIALIZER;
@end

// ---- entropy, memory balloon ----
// https://developer.apple.com/documentation/virtualization/vzentropydeviceconfiguration
API_AVAILABLE(macos(11.0)) @interface VZEntropyDeviceConfiguration : NSObject
- (instancetype)init NS_UNAVAILABLE;
@end
// https://developer.apple.com/documentation/virtualization/vzvirtioentropydeviceconfiguration
API_AVAILABLE(macos(11.0)) @interface VZVirtioEntropyDeviceConfiguration : VZEntropyDeviceConfiguration
- (instancetype)init NS_DESIGNATED_INITIALIZER;
@end
// https://developer.apple.com/documentation/virtualization/vzmemoryballoondeviceconfiguration
API_AVAILABLE(macos(11.0)) @interface VZMemoryBalloonDeviceConfiguration : NSObject
- (instancetype)init NS_UNAVAILABLE;
@end
// https://developer.apple.com/documentation/virtualization/vzvirtiotraditionalmemoryballoondeviceconfiguration
API_AVAILABLE(macos(11.0))
@interface VZVirtioTraditionalMemoryBalloonDeviceConfiguration : VZMemoryBalloonDeviceConfiguration
- (instancetype)init NS_DESIGNATED_INITIALIZER;
@end

// ---- vsock ----
// https://developer.apple.com/documentation/virtualization/vzsocketdeviceconfiguration
API_AVAILABLE(macos(11.0)) @interface VZSocketDeviceConfiguration : NSObject
- (instancetype)init NS_UNAVAILABLE;
@end
// https://developer.apple.com/documentation/virtualization/vzvirtiosocketdeviceconfiguration
API_AVAILABLE(macos(11.0)) @interface VZVirtioSocketDeviceConfiguration : VZSocketDeviceConfiguration
- (instancetype)init NS_DESIGNATED_INITIALIZER;
@end

// https://developer.apple.com/documentation/virtualization/vzvirtiosocketconnection
API_AVAILABLE(macos(11.0)) @interface VZVirtioSocketConnection : NSObject
- (instancetype)init NS_UNAVAILABLE;
// https://developer.apple.com/documentation/virtualization/vzvirtiosocketconnection/destinationport
@property(readonly) uint32_t destinationPort;
// https://developer.apple.com/documentation/virtualization/vzvirtiosocketconnection/sourceport
@property(readonly) uint32_t sourcePort;
// https://developer.apple.com/documentation/virtualization/vzvirtiosocketconnection/filedescriptor
// Owned by the connection; -1 once closed.
@property(readonly) int fileDescriptor;
// https://developer.apple.com/documentation/virtualization/vzvirtiosocketconnection/close()
- (void)close;
@end

@class VZVirtioSocketListener;
@class VZVirtioSocketDevice;

// https://developer.apple.com/documentation/virtualization/vzvirtiosocketlistenerdelegate
API_AVAILABLE(macos(11.0)) @protocol VZVirtioSocketListenerDelegate <NSObject>
@optional
// https://developer.apple.com/documentation/virtualization/vzvirtiosocketlistenerdelegate/listener(_:shouldacceptnewconnection:from:)
- (BOOL)listener:(VZVirtioSocketListener *)listener
    shouldAcceptNewConnection:(VZVirtioSocketConnection *)connection
             fromSocketDevice:(VZVirtioSocketDevice *)socketDevice;
@end

// https://developer.apple.com/documentation/virtualization/vzvirtiosocketlistener
API_AVAILABLE(macos(11.0)) @interface VZVirtioSocketListener : NSObject
- (instancetype)init NS_DESIGNATED_INITIALIZER;
// https://developer.apple.com/documentation/virtualization/vzvirtiosocketlistener/delegate
@property(nullable, weak) id<VZVirtioSocketListenerDelegate> delegate;
@end

// https://developer.apple.com/documentation/virtualization/vzsocketdevice
API_AVAILABLE(macos(11.0)) @interface VZSocketDevice : NSObject
- (instancetype)init NS_UNAVAILABLE;
@end

// https://developer.apple.com/documentation/virtualization/vzvirtiosocketdevice
API_AVAILABLE(macos(11.0)) @interface VZVirtioSocketDevice : VZSocketDevice
// https://developer.apple.com/documentation/virtualization/vzvirtiosocketdevice/setsocketlistener(_:forport:)
- (void)setSocketListener:(VZVirtioSocketListener *)listener forPort:(uint32_t)port;
// https://developer.apple.com/documentation/virtualization/vzvirtiosocketdevice/removesocketlistener(forport:)
- (void)removeSocketListenerForPort:(uint32_t)port;
// https://developer.apple.com/documentation/virtualization/vzvirtiosocketdevice/connect(toport:completionhandler:)
// Does nothing (never calls back) while the guest does not listen on the port.
- (void)connectToPort:(uint32_t)port
    completionHandler:(void (^)(VZVirtioSocketConnection *_Nullable connection,
                                NSError *_Nullable error))completionHandler;
@end

// ---- the machine ----
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration
API_AVAILABLE(macos(11.0)) @interface VZVirtualMachineConfiguration : NSObject
- (instancetype)init NS_DESIGNATED_INITIALIZER;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/bootloader
@property(nullable, strong) VZBootLoader *bootLoader;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/cpucount
@property NSUInteger CPUCount;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/memorysize
@property uint64_t memorySize;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/storagedevices
@property(copy) NSArray<VZStorageDeviceConfiguration *> *storageDevices;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/directorysharingdevices
@property(copy) NSArray<VZDirectorySharingDeviceConfiguration *> *directorySharingDevices API_AVAILABLE(macos(12.0));
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/serialports
@property(copy) NSArray<VZSerialPortConfiguration *> *serialPorts;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/socketdevices
@property(copy) NSArray<VZSocketDeviceConfiguration *> *socketDevices;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/entropydevices
@property(copy) NSArray<VZEntropyDeviceConfiguration *> *entropyDevices;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/memoryballoondevices
@property(copy) NSArray<VZMemoryBalloonDeviceConfiguration *> *memoryBalloonDevices;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/minimumallowedcpucount
@property(class, readonly) NSUInteger minimumAllowedCPUCount;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/maximumallowedcpucount
@property(class, readonly) NSUInteger maximumAllowedCPUCount;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/minimumallowedmemorysize
@property(class, readonly) uint64_t minimumAllowedMemorySize;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/maximumallowedmemorysize
@property(class, readonly) uint64_t maximumAllowedMemorySize;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/validate()
- (BOOL)validateWithError:(NSError **)error;
// NOT USED by the bridge (macOS 14): https://developer.apple.com/documentation/virtualization/vzvirtualmachineconfiguration/validatesaverestoresupport()
- (BOOL)validateSaveRestoreSupportWithError:(NSError **)error API_AVAILABLE(macos(14.0));
@end

// https://developer.apple.com/documentation/virtualization/vzvirtualmachine/state-swift.enum
typedef NS_ENUM(NSInteger, VZVirtualMachineState){
    VZVirtualMachineStateStopped = 0,
    VZVirtualMachineStateRunning = 1,
    VZVirtualMachineStatePaused = 2,
    VZVirtualMachineStateError = 3,
    VZVirtualMachineStateStarting = 4,
    VZVirtualMachineStatePausing = 5,
    VZVirtualMachineStateResuming = 6,
    VZVirtualMachineStateStopping API_AVAILABLE(macos(12.0)) = 7,
    VZVirtualMachineStateSaving API_AVAILABLE(macos(14.0)) = 8,
    VZVirtualMachineStateRestoring API_AVAILABLE(macos(14.0)) = 9,
} API_AVAILABLE(macos(11.0));

@class VZVirtualMachine;

// https://developer.apple.com/documentation/virtualization/vzvirtualmachinedelegate
API_AVAILABLE(macos(11.0)) @protocol VZVirtualMachineDelegate <NSObject>
@optional
// https://developer.apple.com/documentation/virtualization/vzvirtualmachinedelegate/guestdidstop(_:)
- (void)guestDidStopVirtualMachine:(VZVirtualMachine *)virtualMachine;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachinedelegate/virtualmachine(_:didstopwitherror:)
- (void)virtualMachine:(VZVirtualMachine *)virtualMachine didStopWithError:(NSError *)error;
@end

// https://developer.apple.com/documentation/virtualization/vzvirtualmachine
API_AVAILABLE(macos(11.0)) @interface VZVirtualMachine : NSObject
- (instancetype)init NS_UNAVAILABLE;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachine/init(configuration:queue:)
- (instancetype)initWithConfiguration:(VZVirtualMachineConfiguration *)configuration
                                queue:(dispatch_queue_t)queue NS_DESIGNATED_INITIALIZER;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachine/issupported
@property(class, readonly, getter=isSupported) BOOL supported;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachine/state-swift.property (KVO-observable)
@property(readonly) VZVirtualMachineState state;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachine/delegate
@property(nullable, weak) id<VZVirtualMachineDelegate> delegate;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachine/canstart
@property(readonly) BOOL canStart;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachine/canstop
@property(readonly) BOOL canStop API_AVAILABLE(macos(12.0));
// https://developer.apple.com/documentation/virtualization/vzvirtualmachine/canrequeststop
@property(readonly) BOOL canRequestStop;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachine/socketdevices
@property(readonly) NSArray<VZSocketDevice *> *socketDevices;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachine/start(completionhandler:)
- (void)startWithCompletionHandler:(void (^)(NSError *_Nullable errorOrNil))completionHandler;
// https://developer.apple.com/documentation/virtualization/vzvirtualmachine/stop(completionhandler:)
- (void)stopWithCompletionHandler:(void (^)(NSError *_Nullable errorOrNil))completionHandler
    API_AVAILABLE(macos(12.0));
// https://developer.apple.com/documentation/virtualization/vzvirtualmachine/requeststop()
- (BOOL)requestStopWithError:(NSError **)error;
// NOT USED by the bridge (macOS 14): https://developer.apple.com/documentation/virtualization/vzvirtualmachine/savemachinestateto(url:completionhandler:)
- (void)saveMachineStateToURL:(NSURL *)saveFileURL
            completionHandler:(void (^)(NSError *_Nullable errorOrNil))completionHandler API_AVAILABLE(macos(14.0));
@end


NS_ASSUME_NONNULL_END
