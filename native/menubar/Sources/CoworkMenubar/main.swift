import AppKit
import CoworkMenubarCore
import Foundation

// `CoworkMenubar pair --url ws://127.0.0.1:PORT --code CODE` pairs this Mac as its own device
// and keeps the key in the Keychain; `CoworkMenubar` (no arguments) runs the status item.

private func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("CoworkMenubar: \(message)\n".utf8))
    exit(2)
}

private func pair(url: URL, code: String, name: String) {
    Task {
        do {
            let client = try await ControlClient.connect(to: url)
            let credentials = try await client.pair(code: code, name: name)
            // The key is sent once: store it before anything else can fail.
            try KeychainCredentialStore().save(credentials)
            // Prove it works on the same challenge (pairing does not use it up).
            let ok = try await client.authenticate(credentials)
            await client.close()
            print("paired as device \(ok.deviceId) (\(ok.role)) with \(url); the key is in the Keychain")
            exit(0)
        } catch {
            fail("pairing failed: \(error)")
        }
    }
    dispatchMain()
}

let command: MenubarCommand
do {
    command = try MenubarCommand.parse(Array(CommandLine.arguments.dropFirst()), hostName: ProcessInfo.processInfo.hostName)
} catch {
    fail("\(error)")
}

switch command {
case .help:
    print(MenubarCommand.usage)
case .unpair:
    do {
        try KeychainCredentialStore().delete()
        print("this device's key is gone from the Keychain; revoke it on the host too: cowork-vm devices revoke ID")
    } catch {
        fail("\(error)")
    }
case .pair(let url, let code, let name):
    pair(url: url, code: code, name: name)
case .run:
    let app = NSApplication.shared
    let delegate = AppDelegate()
    app.delegate = delegate
    app.setActivationPolicy(.accessory)
    app.run()
}
