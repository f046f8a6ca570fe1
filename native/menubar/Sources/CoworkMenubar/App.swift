import AppKit
import CoworkMenubarCore

/// Run mode: the status item, the notifications and the session, wired together. Everything
/// shown comes from the controller's menu model; what the app does itself is open links, start
/// a workspace through the CLI, show errors and quit.
@MainActor
final class AppDelegate: NSObject, NSApplicationDelegate, MenuSessionDelegate {
    private var session: MenuSession?
    private var statusItem: StatusItemController?
    private var notifications: ApprovalNotifications?

    func applicationDidFinishLaunching(_ notification: Notification) {
        let session = MenuSession(store: KeychainCredentialStore())
        statusItem = StatusItemController { [weak self] action in self?.choose(action) }
        notifications = ApprovalNotifications { [weak self] id, kind in self?.answer(id, kind) }
        session.delegate = self
        self.session = session
        statusItem?.render(.disconnected("connecting to the controller…"))
        session.start()
    }

    func applicationWillTerminate(_ notification: Notification) {
        session?.stop()
    }

    // ---- MenuSessionDelegate ----

    func menuSession(didUpdate model: MenuModel) {
        statusItem?.render(model)
    }

    func menuSession(didUpdatePending approvals: [PendingApproval]) {
        notifications?.update(approvals)
    }

    func menuSession(didDisconnect error: ControlError, retryingIn: TimeInterval?) {
        notifications?.clear()
        let next = retryingIn.map { "; retrying in \(Int($0)) s" } ?? "; pair again: CoworkMenubar pair --url … --code …"
        statusItem?.render(.disconnected("not connected: \(error)\(next)"))
    }

    // ---- actions ----

    private func choose(_ action: MenuAction) {
        guard let session else { return }
        Task { handle(await session.perform(action)) }
    }

    private func answer(_ approvalId: String, _ kind: VerdictKind) {
        guard let session else { return }
        Task { handle(await session.answer(approvalId: approvalId, kind: kind)) }
    }

    private func handle(_ outcome: ActionOutcome) {
        switch outcome {
        case .done:
            break
        case .openURL(let url):
            NSWorkspace.shared.open(url)
        case .startWorkspace(let workspace):
            startWorkspace(workspace)
        case .quit:
            NSApp.terminate(nil)
        case .failed(let error):
            showError("\(error)")
        }
    }

    /// `cowork-vm start --detach --workspace W --listen HOST:PORT`, with the port this menubar
    /// was paired with. A GUI app's PATH lacks npm's and Homebrew's folders, so they are added.
    private func startWorkspace(_ workspace: String) {
        guard let credentials = try? KeychainCredentialStore().load(), let url = URL(string: credentials.url),
              let host = url.host, let port = url.port else {
            showError("cannot start \(workspace): this menubar is not paired")
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["cowork-vm", "start", "--detach", "--workspace", workspace, "--listen", "\(host):\(port)"]
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = ["/opt/homebrew/bin", "/usr/local/bin", env["PATH"] ?? "/usr/bin:/bin"].joined(separator: ":")
        process.environment = env
        process.terminationHandler = { p in
            let status = p.terminationStatus
            Task { @MainActor in
                if status != 0 { self.showError("`cowork-vm start --workspace \(workspace)` exited with status \(status)") }
                self.session?.stop()
                self.session?.start()
            }
        }
        do {
            try process.run()
        } catch {
            showError("cannot run cowork-vm (is it installed on PATH?): \(error.localizedDescription)")
        }
    }

    private func showError(_ text: String) {
        NSApp.activate(ignoringOtherApps: true)
        let alert = NSAlert()
        alert.messageText = "cowork-vm"
        alert.informativeText = text
        alert.runModal()
    }
}
