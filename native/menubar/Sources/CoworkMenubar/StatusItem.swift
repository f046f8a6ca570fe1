import AppKit
import CoworkMenubarCore

/// The NSStatusItem: its title is the model's (with the waiting count), its NSMenu is rebuilt
/// from the model on every update, and a chosen entry hands its action back. Entries the role
/// may not use are left out by the controller's builder, not hidden here.
@MainActor
final class StatusItemController: NSObject {
    private let item: NSStatusItem
    private let onChoose: (MenuAction) -> Void

    init(onChoose: @escaping (MenuAction) -> Void) {
        self.item = NSStatusBar.system.statusItem(withLength: NSStatusItem.variableLength)
        self.onChoose = onChoose
        super.init()
    }

    func render(_ model: MenuModel) {
        if let button = item.button {
            button.title = model.status.statusItemTitle
            button.toolTip = model.status.tooltip
        }
        let menu = NSMenu()
        menu.autoenablesItems = false
        for entry in model.items { menu.addItem(menuItem(for: entry)) }
        item.menu = menu
    }

    private func menuItem(for entry: MenuItem) -> NSMenuItem {
        switch entry {
        case .separator:
            return NSMenuItem.separator()
        case .label(_, let label):
            let item = NSMenuItem(title: label, action: nil, keyEquivalent: "")
            item.isEnabled = false
            return item
        case .action(_, let label, let action, let enabled):
            let item = NSMenuItem(title: label, action: #selector(choose(_:)), keyEquivalent: "")
            item.target = self
            item.isEnabled = enabled
            item.representedObject = ActionBox(action)
            return item
        case .submenu(_, let label, let items):
            let item = NSMenuItem(title: label, action: nil, keyEquivalent: "")
            let submenu = NSMenu(title: label)
            submenu.autoenablesItems = false
            for child in items { submenu.addItem(menuItem(for: child)) }
            item.submenu = submenu
            return item
        }
    }

    @objc private func choose(_ sender: NSMenuItem) {
        guard let box = sender.representedObject as? ActionBox else { return }
        onChoose(box.action)
    }
}

/// NSMenuItem.representedObject holds objects; MenuAction is an enum.
private final class ActionBox: NSObject {
    let action: MenuAction

    init(_ action: MenuAction) {
        self.action = action
    }
}
