import Foundation
#if canImport(CryptoKit)
import CryptoKit
#endif

/// The answer to the server's challenge (src/host/control/auth.ts).
///
/// The signed bytes are exactly UTF-8(nonce) followed by UTF-8(serverId), with nothing between
/// or around them: the nonce as the challenge frame spells it (43 base64url characters, used as
/// text, not decoded) and the server id as the challenge spells it. The key is the 32 bytes that
/// `paired.deviceKey` carries as base64url (no padding). The answer is the HMAC-SHA256 of those
/// bytes under that key, as 64 lowercase hex digits.
///
/// tests/unit/menubar-handshake.test.ts computes the same thing in TypeScript, step by step as
/// written here, and has the server's own verifier accept it; the vector in
/// Tests/CoworkMenubarCoreTests/DeviceAuthTests.swift is checked on both sides.
public enum DeviceAuth {
    public static let keyBytes = 32

    /// UTF-8(nonce) ‖ UTF-8(serverId).
    public static func signedBytes(nonce: String, serverId: String) -> Data {
        var bytes = Data(nonce.utf8)
        bytes.append(contentsOf: Array(serverId.utf8))
        return bytes
    }

    /// base64url without padding (RFC 4648 §5) → bytes. Foundation reads only the standard
    /// alphabet with padding, so translate `-_` to `+/` and pad to a multiple of 4 first.
    public static func decodeBase64URL(_ text: String) -> Data? {
        var b64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64.append("=") }
        return Data(base64Encoded: b64)
    }

    /// The device key from its wire form; anything but 32 bytes is refused.
    public static func deviceKey(fromBase64URL text: String) throws -> Data {
        guard let key = decodeBase64URL(text), key.count == keyBytes else {
            throw ControlError.protocolViolation("the device key is not base64url of \(keyBytes) bytes; pair again")
        }
        return key
    }

    /// hex(HMAC-SHA256(key, UTF-8(nonce) ‖ UTF-8(serverId))), lowercase.
    public static func answer(deviceKey: Data, nonce: String, serverId: String) throws -> String {
        #if canImport(CryptoKit)
        let mac = HMAC<SHA256>.authenticationCode(
            for: signedBytes(nonce: nonce, serverId: serverId), using: SymmetricKey(data: deviceKey))
        return mac.map { String(format: "%02x", $0) }.joined()
        #else
        throw ControlError.unsupported("HMAC-SHA256 needs CryptoKit, which only macOS has")
        #endif
    }
}
