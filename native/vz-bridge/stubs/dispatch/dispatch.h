// STUB, NOT APPLE'S HEADER: the part of libdispatch the bridge uses, for scripts/check-native.sh.
// https://developer.apple.com/documentation/dispatch
// As in the SDK under Objective-C (OS_OBJECT_USE_OBJC), a queue is an Objective-C object, so ARC
// retains and releases it.
#pragma once

#include <stdint.h>

#import <Foundation/Foundation.h>

NS_ASSUME_NONNULL_BEGIN

// https://developer.apple.com/documentation/dispatch/dispatch_queue_t
@protocol OS_dispatch_queue <NSObject>
@end
typedef NSObject<OS_dispatch_queue> *dispatch_queue_t;
// https://developer.apple.com/documentation/dispatch/dispatch_queue_attr_t
@protocol OS_dispatch_queue_attr <NSObject>
@end
typedef NSObject<OS_dispatch_queue_attr> *dispatch_queue_attr_t;
// https://developer.apple.com/documentation/dispatch/dispatch_queue_serial
#define DISPATCH_QUEUE_SERIAL nullptr

// https://developer.apple.com/documentation/dispatch/dispatch_block_t
typedef void (^dispatch_block_t)(void);
// https://developer.apple.com/documentation/dispatch/dispatch_time_t
typedef uint64_t dispatch_time_t;
// https://developer.apple.com/documentation/dispatch/dispatch_time_now
#define DISPATCH_TIME_NOW (0ull)
// https://developer.apple.com/documentation/dispatch/nsec_per_msec
#define NSEC_PER_MSEC 1000000ull

// https://developer.apple.com/documentation/dispatch/1453030-dispatch_queue_create
NS_RETURNS_RETAINED dispatch_queue_t dispatch_queue_create(const char *_Nullable label,
                                                           dispatch_queue_attr_t _Nullable attr);
// https://developer.apple.com/documentation/dispatch/1453057-dispatch_async
void dispatch_async(dispatch_queue_t queue, dispatch_block_t block);
// https://developer.apple.com/documentation/dispatch/1452870-dispatch_sync
void dispatch_sync(dispatch_queue_t queue, __attribute__((noescape)) dispatch_block_t block);
// https://developer.apple.com/documentation/dispatch/1420519-dispatch_time
dispatch_time_t dispatch_time(dispatch_time_t when, int64_t delta);
// https://developer.apple.com/documentation/dispatch/1452876-dispatch_after
void dispatch_after(dispatch_time_t when, dispatch_queue_t queue, dispatch_block_t block);

NS_ASSUME_NONNULL_END
