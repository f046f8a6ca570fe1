// STUB, NOT APPLE'S HEADER. Hand-written from Apple's documentation so that
// scripts/check-native.sh can syntax- and type-check native/vz-bridge on Linux. Only the part of
// Foundation (and the Objective-C runtime types it re-exports) that the bridge uses is declared;
// each declaration names its documentation page. Signatures follow the macOS SDK; if one is
// wrong here, the check proves nothing about it — compare against the page when editing.
#pragma once

#include <stddef.h>
#include <stdint.h>

// ---- availability, as <os/availability.h> spells it ----
// API_AVAILABLE(macos(11.0)) → __attribute__((availability(macos,introduced=11.0))), so
// -Wunguarded-availability-new reports use of a newer API outside `if (@available(macOS N, *))`.
#ifndef API_AVAILABLE
#define VZSTUB_AVAIL_macos(v) __attribute__((availability(macos, introduced = v)))
#define API_AVAILABLE(platform) VZSTUB_AVAIL_##platform
#endif
#define NS_UNAVAILABLE __attribute__((unavailable))
#define NS_DESIGNATED_INITIALIZER __attribute__((objc_designated_initializer))
#define NS_ASSUME_NONNULL_BEGIN _Pragma("clang assume_nonnull begin")
#define NS_ASSUME_NONNULL_END _Pragma("clang assume_nonnull end")
#define NS_ENUM(type, name) enum name : type name; enum name : type
#define NS_OPTIONS(type, name) enum name : type name; enum name : type
#define NS_RETURNS_RETAINED __attribute__((ns_returns_retained))
#define NS_RETURNS_INNER_POINTER __attribute__((objc_returns_inner_pointer))

NS_ASSUME_NONNULL_BEGIN

// ---- Objective-C runtime: https://developer.apple.com/documentation/objectivec ----
// https://developer.apple.com/documentation/objectivec/bool
#if defined(__arm64__) || defined(__aarch64__)
typedef bool BOOL;
#else
typedef signed char BOOL;
#endif
#define YES __objc_yes
#define NO __objc_no
#define nil nullptr
// https://developer.apple.com/documentation/objectivec/nsinteger
typedef long NSInteger;
// https://developer.apple.com/documentation/objectivec/nsuinteger
typedef unsigned long NSUInteger;

@class NSString;

// https://developer.apple.com/documentation/objectivec/1418956-nsobject (the NSObject protocol)
@protocol NSObject
- (BOOL)isKindOfClass:(Class)aClass;
- (BOOL)respondsToSelector:(SEL)aSelector;
@end

// https://developer.apple.com/documentation/objectivec/nsobject
__attribute__((objc_root_class))
@interface NSObject <NSObject>
+ (instancetype)alloc;
+ (instancetype)new;
- (instancetype)init;
+ (Class)class;
// https://developer.apple.com/documentation/objectivec/nsobject/1418555-instancesrespondtoselector
+ (BOOL)instancesRespondToSelector:(SEL)aSelector;
@end

// https://developer.apple.com/documentation/foundation/1395257-nsstringfromselector
NSString *NSStringFromSelector(SEL aSelector);

// https://developer.apple.com/documentation/foundation/nsfastenumeration
typedef struct {
  unsigned long state;
  id __unsafe_unretained _Nullable *_Nullable itemsPtr;
  unsigned long *_Nullable mutationsPtr;
  unsigned long extra[5];
} NSFastEnumerationState;

@protocol NSFastEnumeration
- (NSUInteger)countByEnumeratingWithState:(NSFastEnumerationState *)state
                                  objects:(id __unsafe_unretained _Nullable[_Nonnull])buffer
                                    count:(NSUInteger)len;
@end

// https://developer.apple.com/documentation/foundation/nsstring
@interface NSString : NSObject
// https://developer.apple.com/documentation/foundation/nsstring/1497379-stringwithutf8string
+ (nullable instancetype)stringWithUTF8String:(const char *)nullTerminatedCString;
// https://developer.apple.com/documentation/foundation/nsstring/1411189-utf8string
@property(nullable, readonly) const char *UTF8String NS_RETURNS_INNER_POINTER;
@end

// https://developer.apple.com/documentation/foundation/nsconstantstring (the class of @"…" literals)
@interface NSConstantString : NSString
@end

// https://developer.apple.com/documentation/foundation/nsurl
@interface NSURL : NSObject
// https://developer.apple.com/documentation/foundation/nsurl/1410301-fileurlwithpath
+ (NSURL *)fileURLWithPath:(NSString *)path isDirectory:(BOOL)isDir;
// https://developer.apple.com/documentation/foundation/nsurl/1414650-fileurlwithpath
+ (NSURL *)fileURLWithPath:(NSString *)path;
@end

// https://developer.apple.com/documentation/foundation/nserror
@interface NSError : NSObject
// https://developer.apple.com/documentation/foundation/nserror/1414418-localizeddescription
@property(readonly, copy) NSString *localizedDescription;
@end

// https://developer.apple.com/documentation/foundation/nsexception
@interface NSException : NSObject
// https://developer.apple.com/documentation/foundation/nsexception/1410925-name
@property(readonly, copy) NSString *name;
// https://developer.apple.com/documentation/foundation/nsexception/1415537-reason
@property(nullable, readonly, copy) NSString *reason;
@end

// https://developer.apple.com/documentation/foundation/nsarray
@interface NSArray<__covariant ObjectType> : NSObject <NSFastEnumeration>
// https://developer.apple.com/documentation/foundation/nsarray/1460095-arraywithobjects (what @[…] calls)
+ (instancetype)arrayWithObjects:(const ObjectType _Nonnull[_Nonnull])objects count:(NSUInteger)cnt;
// https://developer.apple.com/documentation/foundation/nsarray/1409982-count
@property(readonly) NSUInteger count;
@end

// https://developer.apple.com/documentation/foundation/nsmutablearray
@interface NSMutableArray<ObjectType> : NSArray<ObjectType>
// https://developer.apple.com/documentation/foundation/nsmutablearray/1460057-array (inherited from NSArray)
+ (instancetype)array;
// https://developer.apple.com/documentation/foundation/nsmutablearray/1411287-addobject
- (void)addObject:(ObjectType)anObject;
@end

// https://developer.apple.com/documentation/foundation/nsdictionary
@interface NSDictionary<__covariant KeyType, __covariant ObjectType> : NSObject
@end

// https://developer.apple.com/documentation/foundation/filehandle (NSFileHandle)
@interface NSFileHandle : NSObject
// https://developer.apple.com/documentation/foundation/filehandle/1416324-initwithfiledescriptor
- (instancetype)initWithFileDescriptor:(int)fd closeOnDealloc:(BOOL)closeopt NS_DESIGNATED_INITIALIZER;
@end

// ---- Key-value observing: https://developer.apple.com/documentation/objectivec/nsobject/nskeyvalueobserving ----
// https://developer.apple.com/documentation/foundation/nskeyvaluechangekey
typedef NSString *NSKeyValueChangeKey;
// https://developer.apple.com/documentation/foundation/nskeyvalueobservingoptions
typedef NS_OPTIONS(NSUInteger, NSKeyValueObservingOptions){
    NSKeyValueObservingOptionNew = 0x01,
    NSKeyValueObservingOptionOld = 0x02,
};

@interface NSObject (NSKeyValueObserving)
// https://developer.apple.com/documentation/objectivec/nsobject/1416553-observevalueforkeypath
- (void)observeValueForKeyPath:(nullable NSString *)keyPath
                      ofObject:(nullable id)object
                        change:(nullable NSDictionary<NSKeyValueChangeKey, id> *)change
                       context:(nullable void *)context;
@end

@interface NSObject (NSKeyValueObserverRegistration)
// https://developer.apple.com/documentation/objectivec/nsobject/1412787-addobserver
- (void)addObserver:(NSObject *)observer
         forKeyPath:(NSString *)keyPath
            options:(NSKeyValueObservingOptions)options
            context:(nullable void *)context;
// https://developer.apple.com/documentation/objectivec/nsobject/1411796-removeobserver
- (void)removeObserver:(NSObject *)observer forKeyPath:(NSString *)keyPath context:(nullable void *)context;
@end

NS_ASSUME_NONNULL_END
