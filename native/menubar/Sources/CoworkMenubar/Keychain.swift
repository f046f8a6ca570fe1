import CoworkMenubarCore
import Foundation
import Security

/// The device id and key, as one generic password item (service `dev.cowork-vm.menubar`,
/// account `device`) holding the DeviceCredentials JSON. Never a file, never UserDefaults.
///
/// kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly keeps the key out of backups and off other
/// Macs. macOS honours it in the data-protection keychain, which needs a signed app with a
/// keychain-access-groups entitlement; an ad-hoc signed build gets errSecMissingEntitlement
/// there and the item goes to the login keychain instead (still the Keychain, where macOS
/// ignores the accessibility class). Every read looks in both, data protection first.
struct KeychainCredentialStore: CredentialStore {
    static let service = "dev.cowork-vm.menubar"
    static let account = "device"

    private func query(dataProtection: Bool) -> [String: Any] {
        [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: Self.service,
            kSecAttrAccount as String: Self.account,
            kSecUseDataProtectionKeychain as String: dataProtection,
        ]
    }

    func load() throws -> DeviceCredentials? {
        for dataProtection in [true, false] {
            var q = query(dataProtection: dataProtection)
            q[kSecReturnData as String] = true
            q[kSecMatchLimit as String] = kSecMatchLimitOne
            var item: CFTypeRef?
            let status = SecItemCopyMatching(q as CFDictionary, &item)
            if status == errSecItemNotFound || status == errSecMissingEntitlement { continue }
            guard status == errSecSuccess, let data = item as? Data else { throw KeychainError(status, "read") }
            do {
                return try JSONDecoder().decode(DeviceCredentials.self, from: data)
            } catch {
                throw ControlError.invalidArgument(
                    "the Keychain item \(Self.service) is not a cowork-vm device; run `CoworkMenubar unpair`, then pair again")
            }
        }
        return nil
    }

    func save(_ credentials: DeviceCredentials) throws {
        let data = try JSONEncoder().encode(credentials)
        var lastStatus = errSecSuccess
        for dataProtection in [true, false] {
            var add = query(dataProtection: dataProtection)
            add[kSecValueData as String] = data
            add[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
            add[kSecAttrLabel as String] = "cowork-vm menubar device key"
            var status = SecItemAdd(add as CFDictionary, nil)
            if status == errSecDuplicateItem {
                let update: [String: Any] = [
                    kSecValueData as String: data,
                    kSecAttrAccessible as String: kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly,
                ]
                status = SecItemUpdate(query(dataProtection: dataProtection) as CFDictionary, update as CFDictionary)
            }
            if status == errSecSuccess { return }
            lastStatus = status
            if status != errSecMissingEntitlement { break }
        }
        throw KeychainError(lastStatus, "store")
    }

    func delete() throws {
        for dataProtection in [true, false] {
            let status = SecItemDelete(query(dataProtection: dataProtection) as CFDictionary)
            guard [errSecSuccess, errSecItemNotFound, errSecMissingEntitlement].contains(status) else {
                throw KeychainError(status, "delete")
            }
        }
    }
}

struct KeychainError: Error, CustomStringConvertible {
    let status: OSStatus
    let operation: String

    init(_ status: OSStatus, _ operation: String) {
        self.status = status
        self.operation = operation
    }

    var description: String {
        let text = SecCopyErrorMessageString(status, nil) as String? ?? "OSStatus \(status)"
        return "cannot \(operation) the device key in the Keychain: \(text)"
    }
}
