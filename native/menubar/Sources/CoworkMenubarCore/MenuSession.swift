import Foundation

/// What the UI is told; everything it renders comes from here.
@MainActor
public protocol MenuSessionDelegate: AnyObject {
    /// A fresh model from `menu.get`.
    func menuSession(didUpdate model: MenuModel)
    /// What is pending now (approvals.list): one notification each, removed when gone.
    func menuSession(didUpdatePending approvals: [PendingApproval])
    /// The connection is down; `retryingIn` is nil when retrying cannot help (pair again).
    func menuSession(didDisconnect error: ControlError, retryingIn: TimeInterval?)
}

/// What choosing an entry came to, for the parts only the app can do.
public enum ActionOutcome: Equatable, Sendable {
    case done
    case openURL(URL)
    case startWorkspace(String)
    case quit
    case failed(ControlError)
}

/// The menubar's connection to one controller: authenticate with the stored key, subscribe to
/// the timeline, and fetch `menu.get` and `approvals.list` again after every timeline event
/// (coalesced: one fetch at a time, one more if events came during it). Reconnects with backoff,
/// except when the server refused the key (4001/4010): then it says to pair again.
@MainActor
public final class MenuSession {
    public weak var delegate: MenuSessionDelegate?
    private let store: CredentialStore
    private var client: ControlClient?
    private var runTask: Task<Void, Never>?
    private var refreshTask: Task<Void, Never>?
    private var dirty = false

    public init(store: CredentialStore) {
        self.store = store
    }

    public func start() {
        guard runTask == nil else { return }
        runTask = Task { await self.run() }
    }

    public func stop() {
        runTask?.cancel()
        runTask = nil
        if let client { Task { await client.close() } }
        client = nil
    }

    private func run() async {
        var backoff: TimeInterval = 1
        while !Task.isCancelled {
            do {
                try await serveOneConnection { backoff = 1 }
            } catch {
                client = nil
                if Task.isCancelled { return }
                let e = error as? ControlError ?? .protocolViolation("\(error)")
                let wait: TimeInterval? = !e.retryable ? nil : (e.isLockout ? 300 : backoff)
                delegate?.menuSession(didDisconnect: e, retryingIn: wait)
                guard let wait else { return }
                try? await Task.sleep(nanoseconds: UInt64(wait * 1_000_000_000))
                backoff = min(backoff * 2, 60)
            }
        }
    }

    private func serveOneConnection(onAuthenticated: () -> Void) async throws {
        guard let credentials = try store.load() else {
            throw ControlError.invalidArgument(
                "not paired: run `CoworkMenubar pair --url ws://127.0.0.1:PORT --code CODE` (code from `cowork-vm pair`)")
        }
        let connection = try await ControlClient.connect(to: ControlClient.controlURL(credentials.url))
        do {
            try await connection.authenticate(credentials)
        } catch {
            await connection.close()
            throw error
        }
        client = connection
        onAuthenticated()
        _ = try await connection.call(TimelineSubscribe())
        scheduleRefresh()
        for await event in connection.events where event.event == "timeline" {
            scheduleRefresh()
        }
        throw await connection.closeReason() ?? ControlError.closed(code: 1006, reason: "")
    }

    /// Coalesces timeline bursts: at most one fetch runs, and one more follows if needed.
    public func scheduleRefresh() {
        dirty = true
        guard refreshTask == nil else { return }
        refreshTask = Task {
            while self.dirty {
                self.dirty = false
                await self.refreshOnce()
            }
            self.refreshTask = nil
        }
    }

    private func refreshOnce() async {
        guard let client else { return }
        do {
            let model = try await client.call(MenuGet())
            delegate?.menuSession(didUpdate: model)
            let pending = try await client.call(ApprovalsList())
            delegate?.menuSession(didUpdatePending: pending)
        } catch {
            // A failed fetch on a live connection (an older server without menu.get, a role
            // that may not list approvals): show it; the connection's end is reported by run().
            let e = error as? ControlError ?? .protocolViolation("\(error)")
            delegate?.menuSession(didUpdate: .disconnected(e.description))
        }
    }

    /// Carries out a chosen entry: approve/deny → approvals.answer, stop → stop,
    /// open-dashboard → dashboard.login (the app opens the link); the rest is the app's.
    public func perform(_ action: MenuAction) async -> ActionOutcome {
        switch action {
        case .approve(let id):
            return await answer(approvalId: id, kind: .approveOnce)
        case .deny(let id):
            return await answer(approvalId: id, kind: .deny)
        case .stop:
            return await callAndRefresh(Stop()) { _ in .done }
        case .openDashboard:
            return await callAndRefresh(DashboardLogin()) { link in
                guard let url = URL(string: link.url), ["http", "https"].contains(url.scheme?.lowercased() ?? "") else {
                    return .failed(.protocolViolation("dashboard.login answered a link that is not http(s): \(link.url)"))
                }
                return .openURL(url)
            }
        case .startWorkspace(let workspace):
            return .startWorkspace(workspace)
        case .quit:
            return .quit
        }
    }

    /// Also the answer of a notification's Approve/Deny button.
    public func answer(approvalId: String, kind: VerdictKind) async -> ActionOutcome {
        await callAndRefresh(ApprovalsAnswer(id: approvalId, kind: kind)) { _ in .done }
    }

    private func callAndRefresh<C: RemoteCall>(_ call: C, then: (C.Result) -> ActionOutcome) async -> ActionOutcome {
        guard let client else { return .failed(.closed(code: 1006, reason: "not connected to the controller")) }
        do {
            let result = try await client.call(call)
            scheduleRefresh()
            return then(result)
        } catch {
            return .failed(error as? ControlError ?? .protocolViolation("\(error)"))
        }
    }
}

extension ControlError {
    /// Locked out (close 4009, or the `limitExceeded` error frame sent just before it): failed
    /// answers from this address are refused for 5 minutes, so retry only after that — sooner
    /// would only add failures.
    var isLockout: Bool {
        switch self {
        case .closed(let code, _): return code == ControlCloseCode.lockedOut
        case .server(let code, _): return code == "limitExceeded"
        default: return false
        }
    }
}

extension MenuModel {
    /// What the menu shows while there is no controller to ask: the reason, and Quit.
    public static func disconnected(_ reason: String) -> MenuModel {
        MenuModel(
            version: menuModelVersion,
            status: MenuStatus(state: .stopped, pendingApprovals: 0, title: "cowork-vm", tooltip: reason, workspace: nil),
            items: [
                .label(id: "reason", label: reason),
                .separator,
                .action(id: "quit", label: "Quit cowork-vm menubar", action: .quit, enabled: true),
            ])
    }
}

extension MenuStatus {
    /// The text next to the icon: the model's title, which names the waiting count; if a
    /// builder's title ever leaves the count out, it is added, so a waiting approval is never silent.
    public var statusItemTitle: String {
        guard pendingApprovals > 0, !title.contains(String(pendingApprovals)) else { return title }
        return "\(title) · \(pendingApprovals) waiting"
    }
}

extension PendingApproval {
    /// The notification's text: what would run and why it asks.
    public var notificationBody: String {
        let what = command ?? tool
        let why = reasons.first.map { " — \($0)" } ?? ""
        return String((what + why).prefix(240))
    }
}
