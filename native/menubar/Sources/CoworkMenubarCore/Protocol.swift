import Foundation

// The control API's frames, as src/host/control/protocol.ts defines them: every frame is one
// JSON text message. tests/unit/menubar-protocol-sync.test.ts reads this file: each client frame
// is a struct with `let type = "<wire type>"` and exactly the schema's fields; each server frame
// the client reads is decoded by `ServerFrame`'s `case "<wire type>": self = try .x(Struct(...))`.

/// The protocol version this client speaks (PROTOCOL_VERSION); a challenge of another is refused.
public let controlProtocolVersion = 1

/// Close codes the server uses (CLOSE_CODES in protocol.ts).
public enum ControlCloseCode {
    public static let authFailed = 4001
    public static let forbiddenOrigin = 4003
    public static let protocolAbuse = 4008
    public static let lockedOut = 4009
    public static let deviceRevoked = 4010
    public static let tryAgainLater = 1013
    public static let shuttingDown = 1001
}

// ---- client → server ----------------------------------------------------------------------

struct PairFrame: Encodable {
    let type = "pair"
    let code: String
    let name: String
}

struct AuthFrame: Encodable {
    let type = "auth"
    let deviceId: String
    /// The nonce of the challenge being answered (the one this connection was sent).
    let nonce: String
    /// DeviceAuth.answer: lowercase hex HMAC-SHA256(deviceKey, UTF-8(nonce) ‖ UTF-8(serverId)).
    let hmac: String
}

struct RequestFrame<Params: Encodable>: Encodable {
    let type = "req"
    /// 1–64 characters chosen by the client; the answer carries the same id.
    let id: String
    let method: String
    let params: Params?
}

// ---- server → client ----------------------------------------------------------------------

public struct ChallengeFrame: Decodable, Sendable {
    public let version: Int
    public let nonce: String
    public let serverId: String
    public let expiresInMs: Int
}

public struct AuthOkFrame: Decodable, Sendable {
    public let deviceId: String
    public let name: String
    public let role: String
}

public struct PairedFrame: Decodable, Sendable {
    public let deviceId: String
    /// base64url of 32 random bytes, sent exactly once: it goes straight to the Keychain.
    public let deviceKey: String
    public let role: String
    public let serverId: String
}

public struct ErrorBody: Decodable, Equatable, Sendable {
    /// A CoworkError code (src/host/errors.ts): denied, invalidArgument, limitExceeded, …
    public let code: String
    public let message: String
}

public struct ErrorFrame: Decodable, Sendable {
    public let error: ErrorBody
}

public struct ResponseFrame: Decodable, Sendable {
    /// Null when the server could not read the request's id (a malformed frame).
    public let id: String?
    public let ok: Bool
    public let error: ErrorBody?
}

/// The `result` of an `ok` response, read as the type its request expects.
struct ResultEnvelope<Result: Decodable>: Decodable {
    let result: Result
}

public struct EventFrame: Decodable, Sendable {
    /// "timeline" for timeline.subscribe's events.
    public let event: String
    public let data: JSONValue?
}

public enum ServerFrame: Decodable, Sendable {
    case challenge(ChallengeFrame)
    case authOk(AuthOkFrame)
    case paired(PairedFrame)
    case error(ErrorFrame)
    case response(ResponseFrame)
    case event(EventFrame)

    private enum CodingKeys: String, CodingKey {
        case type
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "challenge":
            self = try .challenge(ChallengeFrame(from: decoder))
        case "auth-ok":
            self = try .authOk(AuthOkFrame(from: decoder))
        case "paired":
            self = try .paired(PairedFrame(from: decoder))
        case "error":
            self = try .error(ErrorFrame(from: decoder))
        case "res":
            self = try .response(ResponseFrame(from: decoder))
        case "event":
            self = try .event(EventFrame(from: decoder))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: c, debugDescription: "unknown frame type '\(type)'")
        }
    }

    var wireType: String {
        switch self {
        case .challenge: return "challenge"
        case .authOk: return "auth-ok"
        case .paired: return "paired"
        case .error: return "error"
        case .response: return "res"
        case .event: return "event"
        }
    }
}
