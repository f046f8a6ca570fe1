import Foundation

/// What pairing gives this device: kept only in the macOS Keychain (see Keychain.swift), never
/// in a file or UserDefaults. `deviceKey` is the secret; the rest says where and who.
public struct DeviceCredentials: Codable, Equatable, Sendable {
    /// The control API this device was paired with (ws://127.0.0.1:PORT).
    public let url: String
    public let deviceId: String
    /// base64url of the 32-byte key, as `paired.deviceKey` sent it.
    public let deviceKey: String
    /// The server the key belongs to; a challenge from another server is refused.
    public let serverId: String
    public let role: String

    public init(url: String, deviceId: String, deviceKey: String, serverId: String, role: String) {
        self.url = url
        self.deviceId = deviceId
        self.deviceKey = deviceKey
        self.serverId = serverId
        self.role = role
    }
}

/// Where credentials live; the app's is the Keychain, tests may keep them in memory.
public protocol CredentialStore {
    func load() throws -> DeviceCredentials?
    func save(_ credentials: DeviceCredentials) throws
    func delete() throws
}

public enum ControlError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The server answered with an error (`error` frame or a failed `res`).
    case server(code: String, message: String)
    /// The connection closed; `code` is the WebSocket close code (4001, 4010, …).
    case closed(code: Int, reason: String)
    case protocolViolation(String)
    case timeout(String)
    case invalidArgument(String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .server(let code, let message): return "\(code): \(message)"
        case .closed(let code, let reason): return "connection closed (\(code)\(reason.isEmpty ? "" : " \(reason)"))"
        case .protocolViolation(let m): return "protocol error: \(m)"
        case .timeout(let m): return "timeout: \(m)"
        case .invalidArgument(let m): return m
        case .unsupported(let m): return m
        }
    }

    /// Whether reconnecting with the same credentials can help. A failed authentication or a
    /// revoked device cannot: retrying would only count against the address's lockout.
    public var retryable: Bool {
        switch self {
        case .closed(let code, _):
            return code != ControlCloseCode.authFailed && code != ControlCloseCode.deviceRevoked
                && code != ControlCloseCode.forbiddenOrigin && code != ControlCloseCode.protocolAbuse
        case .server(let code, _):
            return code != "denied"
        case .protocolViolation, .invalidArgument, .unsupported:
            return false
        case .timeout:
            return true
        }
    }
}
