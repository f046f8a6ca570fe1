import Foundation

// The contract's methods this client calls (METHODS in src/host/api/contract.ts, transport
// `remote`). tests/unit/menubar-protocol-sync.test.ts checks every raw value below against the
// contract, and every `RemoteCall`'s fields against that method's params.

/// Every method the menubar sends; `ControlClient.call` takes nothing else.
public enum RemoteMethod: String, Sendable, CaseIterable {
    case menuGet = "menu.get"
    case approvalsList = "approvals.list"
    case approvalsAnswer = "approvals.answer"
    case timelineSubscribe = "timeline.subscribe"
    case stop = "stop"
    case dashboardLogin = "dashboard.login"
}

/// One request: its stored properties are the method's params, exactly.
public protocol RemoteCall: Encodable, Sendable {
    associatedtype Result: Decodable & Sendable
    static var method: RemoteMethod { get }
}

/// The menu model the controller builds for this device's role.
public struct MenuGet: RemoteCall {
    public typealias Result = MenuModel
    public static let method = RemoteMethod.menuGet
    public init() {}
}

/// What is waiting for an answer (one notification each).
public struct ApprovalsList: RemoteCall {
    public typealias Result = [PendingApproval]
    public static let method = RemoteMethod.approvalsList
    public init() {}
}

/// `kind` of approvals.answer (verdictKindSchema).
public enum VerdictKind: String, Encodable, Sendable {
    case approveOnce = "approve-once"
    case approveTask = "approve-task"
    case deny = "deny"
}

public struct ApprovalsAnswer: RemoteCall {
    public typealias Result = ApprovalAnswered
    public static let method = RemoteMethod.approvalsAnswer
    public let id: String
    public let kind: VerdictKind

    public init(id: String, kind: VerdictKind) {
        self.id = id
        self.kind = kind
    }
}

/// Timeline events arrive as `event` frames with event "timeline" until the connection closes.
public struct TimelineSubscribe: RemoteCall {
    public typealias Result = TimelineSubscribed
    public static let method = RemoteMethod.timelineSubscribe
    public init() {}
}

public struct Stop: RemoteCall {
    public typealias Result = Stopping
    public static let method = RemoteMethod.stop
    public init() {}
}

/// A one-time dashboard link, for a session bound to this device.
public struct DashboardLogin: RemoteCall {
    public typealias Result = DashboardLink
    public static let method = RemoteMethod.dashboardLogin
    public init() {}
}

// ---- results ------------------------------------------------------------------------------

public struct PendingApproval: Decodable, Equatable, Sendable {
    public let id: String
    public let taskId: String?
    public let tool: String
    public let command: String?
    public let cwd: String?
    public let risk: String
    public let reasons: [String]
    public let expiresAt: Double
}

public struct ApprovalAnswered: Decodable, Sendable {
    public let answered: String
    public let kind: String
}

public struct TimelineSubscribed: Decodable, Sendable {
    /// False when this connection was already subscribed.
    public let subscribed: Bool
}

public struct Stopping: Decodable, Sendable {
    public let stopping: Bool
}

public struct DashboardLink: Decodable, Sendable {
    public let url: String
    public let expiresAt: Double
}
