import Foundation

/// A client of the controller's WebSocket control API (src/host/control/: protocol.ts, auth.ts,
/// session.ts, server.ts), over URLSessionWebSocketTask. The steps, in the server's order:
///
/// 1. connect: the server's first frame is `challenge` {version, nonce, serverId, expiresInMs};
/// 2. pairing only: send `pair` {code, name}, read `paired` {deviceId, deviceKey, role, serverId}
///    (the key comes this once; the caller stores it). Pairing does not use up the challenge;
/// 3. send `auth` {deviceId, nonce, hmac} for that same challenge (DeviceAuth.answer), read
///    `auth-ok`. Nothing but pair and auth may be sent before this, all within expiresInMs;
/// 4. then `req` {id, method, params} frames, answered by `res` {id, ok, result | error} with the
///    same id; `event` frames ({event: "timeline", data}) arrive after timeline.subscribe.
///
/// An `error` frame is the server's answer to a failed pair or auth (and comes before it closes
/// the connection); the close code then says whether retrying can help (ControlError.retryable).
public actor ControlClient {
    public nonisolated let url: URL
    /// `event` frames, in order; finishes when the connection closes (then see `closeReason`).
    public nonisolated let events: AsyncStream<EventFrame>

    private let session: URLSession
    private let task: URLSessionWebSocketTask
    private let eventSink: AsyncStream<EventFrame>.Continuation
    private let callTimeout: TimeInterval
    private var challenge: ChallengeFrame?
    private var authenticated = false
    /// Requests sent and not answered yet, by id; each gets its `res` frame's raw bytes.
    private var pending: [String: CheckedContinuation<Data, Error>] = [:]
    private var lastRequestId = 0
    private var lastServerError: ErrorBody?
    private var closedWith: ControlError?

    /// Opens the connection and resolves once the server's challenge has arrived.
    public static func connect(to url: URL, callTimeout: TimeInterval = 30) async throws -> ControlClient {
        let client = ControlClient(url: url, callTimeout: callTimeout)
        do {
            try await client.readChallenge()
        } catch {
            await client.close()
            throw error
        }
        return client
    }

    /// The address of a control API: ws:// only on loopback (the server refuses plain ws://
    /// elsewhere, and pairing would carry the key in clear), wss:// anywhere; a port is required.
    public static func controlURL(_ text: String) throws -> URL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host else {
            throw ControlError.invalidArgument("--url '\(text)' is not a URL like ws://127.0.0.1:7420")
        }
        guard scheme == "ws" || scheme == "wss" else {
            throw ControlError.invalidArgument("--url '\(text)': the scheme must be ws:// (loopback) or wss://")
        }
        guard url.port != nil else {
            throw ControlError.invalidArgument("--url '\(text)' has no port; use the port of `cowork-vm start --listen`")
        }
        if scheme == "ws" && !isLoopback(host) {
            throw ControlError.invalidArgument(
                "--url '\(text)': plain ws:// is only for 127.0.0.1, ::1 or localhost; use wss:// for another host")
        }
        return url
    }

    static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if h == "localhost" || h == "::1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else { return false }
        return parts[0] == "127"
    }

    private init(url: URL, callTimeout: TimeInterval) {
        self.url = url
        self.callTimeout = callTimeout
        var sink: AsyncStream<EventFrame>.Continuation!
        events = AsyncStream(bufferingPolicy: .bufferingNewest(256)) { sink = $0 }
        eventSink = sink
        // Configured on locals: a synchronous actor init may not touch its state once set.
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = 30
        let session = URLSession(configuration: config)
        let task = session.webSocketTask(with: url)
        task.maximumMessageSize = 4 * 1024 * 1024
        self.session = session
        self.task = task
    }

    /// Why the connection ended, once `events` has finished.
    public func closeReason() -> ControlError? { closedWith }

    // ---- handshake --------------------------------------------------------------------------

    private func readChallenge() async throws {
        task.resume()
        let frame = try await nextHandshakeFrame()
        guard case .challenge(let c) = frame else {
            throw ControlError.protocolViolation("\(url) did not start with a challenge: not a cowork-vm control API")
        }
        guard c.version == controlProtocolVersion else {
            throw ControlError.protocolViolation(
                "the server speaks control protocol \(c.version), this menubar \(controlProtocolVersion); update one of them")
        }
        challenge = c
    }

    /// Redeems a one-time pairing code; the result must be stored (the key is never sent again).
    public func pair(code: String, name: String) async throws -> DeviceCredentials {
        guard let challenge, !authenticated else {
            throw ControlError.protocolViolation("pairing is done right after connecting, before authentication")
        }
        try await send(PairFrame(code: code, name: name))
        let frame = try await nextHandshakeFrame()
        guard case .paired(let p) = frame else {
            throw ControlError.protocolViolation("unexpected '\(frame.wireType)' frame while pairing")
        }
        guard p.serverId == challenge.serverId else {
            throw ControlError.protocolViolation("the pairing answer names server '\(p.serverId)', the challenge '\(challenge.serverId)'")
        }
        _ = try DeviceAuth.deviceKey(fromBase64URL: p.deviceKey)
        return DeviceCredentials(
            url: url.absoluteString, deviceId: p.deviceId, deviceKey: p.deviceKey, serverId: p.serverId, role: p.role)
    }

    /// Answers this connection's challenge; afterwards requests may be sent.
    @discardableResult
    public func authenticate(_ credentials: DeviceCredentials) async throws -> AuthOkFrame {
        guard let challenge, !authenticated else {
            throw ControlError.protocolViolation("this connection already answered its challenge")
        }
        guard credentials.serverId == challenge.serverId else {
            throw ControlError.invalidArgument(
                "this server is '\(challenge.serverId)', but the stored key belongs to '\(credentials.serverId)'; pair with this server")
        }
        let key = try DeviceAuth.deviceKey(fromBase64URL: credentials.deviceKey)
        let hmac = try DeviceAuth.answer(deviceKey: key, nonce: challenge.nonce, serverId: challenge.serverId)
        try await send(AuthFrame(deviceId: credentials.deviceId, nonce: challenge.nonce, hmac: hmac))
        let frame = try await nextHandshakeFrame()
        guard case .authOk(let ok) = frame else {
            throw ControlError.protocolViolation("unexpected '\(frame.wireType)' frame while authenticating")
        }
        self.challenge = nil
        authenticated = true
        Task { await self.receiveLoop() }
        Task { await self.pingLoop() }
        return ok
    }

    /// Before authentication frames come one at a time, each the answer to the frame just sent.
    private func nextHandshakeFrame() async throws -> ServerFrame {
        let message: URLSessionWebSocketTask.Message
        do {
            message = try await task.receive()
        } catch {
            throw closeError(error)
        }
        let frame = try decodeFrame(frameBytes(message))
        if case .error(let e) = frame {
            lastServerError = e.error
            throw ControlError.server(code: e.error.code, message: e.error.message)
        }
        return frame
    }

    // ---- requests -----------------------------------------------------------------------------

    /// Calls one contract method; the result is decoded as the call's `Result`.
    public func call<C: RemoteCall>(_ call: C) async throws -> C.Result {
        let frame = try await request(C.method, params: call)
        do {
            // Decoded from the frame's own bytes, so numbers keep their JSON spelling.
            return try JSONDecoder().decode(ResultEnvelope<C.Result>.self, from: frame).result
        } catch {
            throw ControlError.protocolViolation("the answer to '\(C.method.rawValue)' is not what this menubar expects: \(error)")
        }
    }

    private func request<P: Encodable>(_ method: RemoteMethod, params: P) async throws -> Data {
        if let closedWith { throw closedWith }
        guard authenticated else { throw ControlError.protocolViolation("not authenticated: call authenticate first") }
        lastRequestId += 1
        let id = "m\(lastRequestId)"
        let text = try encode(RequestFrame(id: id, method: method.rawValue, params: params))
        let timeout = callTimeout
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Data, Error>) in
            pending[id] = continuation
            task.send(.string(text)) { error in
                guard let error else { return }
                Task { await self.connectionFailed(error) }
            }
            Task {
                try? await Task.sleep(nanoseconds: UInt64(timeout * 1_000_000_000))
                await self.resolve(id, throwing: ControlError.timeout("no answer to '\(method.rawValue)' within \(Int(timeout)) s"))
            }
        }
    }

    private func resolve(_ id: String, throwing error: Error) {
        pending.removeValue(forKey: id)?.resume(throwing: error)
    }

    private func receiveLoop() async {
        while closedWith == nil {
            do {
                let message = try await task.receive()
                let bytes = try frameBytes(message)
                try dispatch(decodeFrame(bytes), bytes: bytes)
            } catch {
                finish(error as? ControlError ?? closeError(error))
                return
            }
        }
    }

    private func dispatch(_ frame: ServerFrame, bytes: Data) throws {
        switch frame {
        case .response(let res):
            // id null: the server could not read one of our frames; nothing waits for that answer.
            guard let id = res.id, let continuation = pending.removeValue(forKey: id) else { return }
            if res.ok {
                continuation.resume(returning: bytes)
            } else {
                let body = res.error ?? ErrorBody(code: "internal", message: "a failed answer without an error")
                continuation.resume(throwing: ControlError.server(code: body.code, message: body.message))
            }
        case .event(let event):
            eventSink.yield(event)
        case .error(let e):
            // Sent just before the server closes (a revoke, a shutdown, a slow subscriber).
            lastServerError = e.error
        case .challenge, .authOk, .paired:
            throw ControlError.protocolViolation("unexpected '\(frame.wireType)' frame after authentication")
        }
    }

    /// Keeps an idle connection open through URLSession's timeouts and notices a dead peer.
    private func pingLoop() async {
        while closedWith == nil {
            try? await Task.sleep(nanoseconds: 20_000_000_000)
            if closedWith != nil { return }
            task.sendPing { error in
                guard let error else { return }
                Task { await self.connectionFailed(error) }
            }
        }
    }

    private func connectionFailed(_ error: Error) {
        finish(closeError(error))
    }

    public func close() {
        guard closedWith == nil else { return }
        task.cancel(with: .normalClosure, reason: Data("client done".utf8))
        finish(.closed(code: 1000, reason: "client done"))
    }

    private func finish(_ error: ControlError) {
        guard closedWith == nil else { return }
        closedWith = error
        for continuation in pending.values { continuation.resume(throwing: error) }
        pending.removeAll()
        eventSink.finish()
        task.cancel()
        session.finishTasksAndInvalidate()
    }

    // ---- framing ------------------------------------------------------------------------------

    private func send<F: Encodable>(_ frame: F) async throws {
        let text = try encode(frame)
        do {
            try await task.send(.string(text))
        } catch {
            throw closeError(error)
        }
    }

    private func encode<F: Encodable>(_ frame: F) throws -> String {
        String(decoding: try JSONEncoder().encode(frame), as: UTF8.self)
    }

    private func frameBytes(_ message: URLSessionWebSocketTask.Message) throws -> Data {
        guard case .string(let text) = message else {
            throw ControlError.protocolViolation("the server sent a binary frame; the control API sends JSON text")
        }
        return Data(text.utf8)
    }

    private func decodeFrame(_ bytes: Data) throws -> ServerFrame {
        do {
            return try JSONDecoder().decode(ServerFrame.self, from: bytes)
        } catch {
            throw ControlError.protocolViolation("unreadable frame from the server: \(error)")
        }
    }

    /// The close code and the server's last error message, when the socket has closed.
    private func closeError(_ error: Error) -> ControlError {
        let code = task.closeCode.rawValue
        if code != URLSessionWebSocketTask.CloseCode.invalid.rawValue {
            let reason = lastServerError?.message ?? task.closeReason.map { String(decoding: $0, as: UTF8.self) } ?? ""
            return .closed(code: code, reason: reason)
        }
        if let body = lastServerError { return .server(code: body.code, message: body.message) }
        return .closed(code: 1006, reason: error.localizedDescription)
    }
}
