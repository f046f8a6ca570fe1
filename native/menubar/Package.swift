// swift-tools-version:5.9
// The cowork-vm menubar item: a client of the controller's WebSocket control API.
// NEVER BUILT OR RUN: written without a Mac or a Swift toolchain (see README.md).
import PackageDescription

let package = Package(
    name: "CoworkMenubar",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "CoworkMenubar", targets: ["CoworkMenubar"]),
    ],
    targets: [
        // The wire model, the frames, the HMAC answer and the client: Foundation (and CryptoKit
        // for HMAC-SHA256) only, no AppKit, Security or UserNotifications, so it is testable
        // apart from the UI (`swift test`).
        .target(name: "CoworkMenubarCore", path: "Sources/CoworkMenubarCore"),
        // The UI and the Keychain: NSStatusItem, UNUserNotificationCenter, Security.framework.
        .executableTarget(
            name: "CoworkMenubar",
            dependencies: ["CoworkMenubarCore"],
            path: "Sources/CoworkMenubar"
        ),
        .testTarget(
            name: "CoworkMenubarCoreTests",
            dependencies: ["CoworkMenubarCore"],
            path: "Tests/CoworkMenubarCoreTests",
            resources: [.copy("Fixtures")]
        ),
    ]
)
