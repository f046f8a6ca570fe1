import Foundation

// The menu model's wire form: a mirror of src/host/menu/model.ts, field for field. The
// controller builds it (`menu.get`); the menubar only renders it and sends back the action of
// the entry the user chose.
//
// tests/unit/menubar-model-sync.test.ts reads this file and compares it with the zod schema, so
// keep its shape: one stored property or enum case per line, wire names equal to Swift names
// (CodingKeys without raw values), and each decoder's `case "wire": self = .swiftCase(...)`.

/// `version` of the model this menubar understands (MENU_MODEL_VERSION).
public let menuModelVersion = 1

public struct MenuModel: Decodable, Equatable, Sendable {
    public let version: Int
    public let status: MenuStatus
    public let items: [MenuItem]

    public init(version: Int, status: MenuStatus, items: [MenuItem]) {
        self.version = version
        self.status = status
        self.items = items
    }

    private enum CodingKeys: String, CodingKey {
        case version
        case status
        case items
    }

    /// Fails closed on another version: a model this code does not know is not rendered half-right.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(Int.self, forKey: .version)
        guard version == menuModelVersion else {
            throw DecodingError.dataCorruptedError(
                forKey: .version, in: c,
                debugDescription: "menu model version \(version) is not \(menuModelVersion); update the menubar")
        }
        status = try c.decode(MenuStatus.self, forKey: .status)
        items = try c.decode([MenuItem].self, forKey: .items)
    }
}

/// stopped: no controller runs; waiting: it runs and at least one approval is pending.
public enum MenuState: String, Decodable, Equatable, Sendable {
    case stopped
    case running
    case waiting
}

public struct MenuStatus: Decodable, Equatable, Sendable {
    public let state: MenuState
    public let pendingApprovals: Int
    /// Short text next to the icon ("cowork-vm", "cowork-vm · 2 waiting").
    public let title: String
    /// Longer text: the workspace, the VM state, what waits.
    public let tooltip: String
    /// The workspace this model is about, when a controller runs.
    public let workspace: String?

    public init(state: MenuState, pendingApprovals: Int, title: String, tooltip: String, workspace: String?) {
        self.state = state
        self.pendingApprovals = pendingApprovals
        self.title = title
        self.tooltip = tooltip
        self.workspace = workspace
    }
}

/// What choosing an entry does (discriminated by `kind`).
public enum MenuAction: Decodable, Equatable, Sendable {
    case approve(approvalId: String)
    case deny(approvalId: String)
    case openDashboard
    case stop
    case startWorkspace(workspace: String)
    case quit

    private enum CodingKeys: String, CodingKey {
        case kind
        case approvalId
        case workspace
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try c.decode(String.self, forKey: .kind)
        switch kind {
        case "approve":
            self = try .approve(approvalId: c.decodeNonEmpty(forKey: .approvalId))
        case "deny":
            self = try .deny(approvalId: c.decodeNonEmpty(forKey: .approvalId))
        case "open-dashboard":
            self = .openDashboard
        case "stop":
            self = .stop
        case "start-workspace":
            self = try .startWorkspace(workspace: c.decodeNonEmpty(forKey: .workspace))
        case "quit":
            self = .quit
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .kind, in: c, debugDescription: "unknown menu action kind '\(kind)'")
        }
    }
}

/// One entry of the menu (discriminated by `type`).
public indirect enum MenuItem: Decodable, Equatable, Sendable {
    case separator
    /// Text that cannot be chosen (a heading, a detail line).
    case label(id: String, label: String)
    case action(id: String, label: String, action: MenuAction, enabled: Bool)
    case submenu(id: String, label: String, items: [MenuItem])

    private enum CodingKeys: String, CodingKey {
        case type
        case id
        case label
        case action
        case enabled
        case items
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "separator":
            self = .separator
        case "label":
            self = try .label(
                id: c.decodeNonEmpty(forKey: .id),
                label: c.decode(String.self, forKey: .label))
        case "action":
            self = try .action(
                id: c.decodeNonEmpty(forKey: .id),
                label: c.decode(String.self, forKey: .label),
                action: c.decode(MenuAction.self, forKey: .action),
                enabled: c.decode(Bool.self, forKey: .enabled))
        case "submenu":
            self = try .submenu(
                id: c.decodeNonEmpty(forKey: .id),
                label: c.decode(String.self, forKey: .label),
                items: c.decode([MenuItem].self, forKey: .items))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: c, debugDescription: "unknown menu item type '\(type)'")
        }
    }
}
