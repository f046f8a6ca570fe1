import CoworkMenubarCore
import Foundation
import UserNotifications

private let approvalCategory = "dev.cowork-vm.approval"
private let approveAction = "approve"
private let denyAction = "deny"

/// One notification per pending approval (identifier = the approval id) with Approve and Deny
/// buttons; an approval that stops being pending — answered here, in the CLI, the dashboard or
/// Telegram, or timed out — has its notification removed. A button sends approvals.answer.
///
/// UNUserNotificationCenter works only in an app bundle (Support/make-app.sh); a bare
/// `swift run` binary has no bundle identifier, so notifications stay off and the log says why.
@MainActor
final class ApprovalNotifications: NSObject, UNUserNotificationCenterDelegate {
    private let center: UNUserNotificationCenter?
    private let onAnswer: (String, VerdictKind) -> Void
    private var shown: Set<String> = []

    init(onAnswer: @escaping (String, VerdictKind) -> Void) {
        self.center = Bundle.main.bundleIdentifier == nil ? nil : UNUserNotificationCenter.current()
        self.onAnswer = onAnswer
        super.init()
        guard let center else {
            NSLog("cowork-vm menubar: no app bundle, so no notifications (build the .app with Support/make-app.sh)")
            return
        }
        let approve = UNNotificationAction(identifier: approveAction, title: "Approve once", options: [.authenticationRequired])
        let deny = UNNotificationAction(identifier: denyAction, title: "Deny", options: [.destructive])
        center.setNotificationCategories([
            UNNotificationCategory(identifier: approvalCategory, actions: [approve, deny], intentIdentifiers: [], options: []),
        ])
        center.delegate = self
        center.requestAuthorization(options: [.alert, .sound]) { granted, error in
            if !granted {
                NSLog("cowork-vm menubar: notifications not allowed (%@); approvals show in the menu only",
                      error?.localizedDescription ?? "turned off in System Settings")
            }
        }
    }

    func update(_ pending: [PendingApproval]) {
        guard let center else { return }
        let ids = Set(pending.map(\.id))
        let gone = Array(shown.subtracting(ids))
        if !gone.isEmpty {
            center.removeDeliveredNotifications(withIdentifiers: gone)
            center.removePendingNotificationRequests(withIdentifiers: gone)
        }
        for approval in pending where !shown.contains(approval.id) {
            let content = UNMutableNotificationContent()
            content.title = "cowork-vm: approval needed"
            content.body = approval.notificationBody
            content.categoryIdentifier = approvalCategory
            content.sound = .default
            center.add(UNNotificationRequest(identifier: approval.id, content: content, trigger: nil))
        }
        shown = ids
    }

    /// Removes everything shown (the connection is gone, so nothing here can be answered).
    func clear() {
        update([])
    }

    nonisolated func userNotificationCenter(
        _ center: UNUserNotificationCenter,
        didReceive response: UNNotificationResponse,
        withCompletionHandler completionHandler: @escaping () -> Void
    ) {
        let approvalId = response.notification.request.identifier
        let kind: VerdictKind?
        switch response.actionIdentifier {
        case approveAction: kind = .approveOnce
        case denyAction: kind = .deny
        default: kind = nil  // the banner itself was clicked: the menu shows the choices
        }
        Task { @MainActor in
            if let kind { self.onAnswer(approvalId, kind) }
            completionHandler()
        }
    }

    /// A status item app counts as frontmost often; show the banner anyway.
    nonisolated func userNotificationCenter(
        _ center: UNUserNotificationCenter,
        willPresent notification: UNNotification,
        withCompletionHandler completionHandler: @escaping (UNNotificationPresentationOptions) -> Void
    ) {
        completionHandler([.banner, .list, .sound])
    }
}
