import Foundation

/// `CoworkMenubar pair --url ws://127.0.0.1:PORT --code CODE [--name NAME]`, `CoworkMenubar
/// unpair`, or no arguments: run as the status item.
public enum MenubarCommand: Equatable {
    case run
    case pair(url: URL, code: String, name: String)
    case unpair
    case help

    public static let usage = """
        usage: CoworkMenubar                      run the status item (after pairing)
               CoworkMenubar pair --url ws://127.0.0.1:PORT --code CODE [--name NAME]
               CoworkMenubar unpair               forget this device's key (Keychain)
        The controller must listen: `cowork-vm start --listen 127.0.0.1:PORT` or
        `[control] listen = "127.0.0.1:PORT"`; the code comes from `cowork-vm pair`.
        """

    /// Pairing codes: 6 characters from A–Z without I and O, and 2–9 (pairingCodeSchema).
    static let pairingAlphabet = Set("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")

    public static func parse(_ args: [String], hostName: String) throws -> MenubarCommand {
        guard let verb = args.first else { return .run }
        switch verb {
        case "-h", "--help", "help":
            return .help
        case "unpair":
            guard args.count == 1 else { throw ControlError.invalidArgument("unpair takes no arguments") }
            return .unpair
        case "pair":
            var flags: [String: String] = [:]
            var rest = args.dropFirst()
            while let flag = rest.popFirst() {
                guard ["--url", "--code", "--name"].contains(flag) else {
                    throw ControlError.invalidArgument("pair: unknown option '\(flag)' (expected --url, --code, --name)")
                }
                guard let value = rest.popFirst() else { throw ControlError.invalidArgument("pair: \(flag) needs a value") }
                flags[flag] = value
            }
            guard let urlText = flags["--url"] else { throw ControlError.invalidArgument("pair: --url ws://127.0.0.1:PORT is required") }
            guard let codeText = flags["--code"] else { throw ControlError.invalidArgument("pair: --code CODE is required (from `cowork-vm pair`)") }
            let code = codeText.trimmingCharacters(in: .whitespaces).uppercased()
            guard code.count == 6, code.allSatisfy({ pairingAlphabet.contains($0) }) else {
                throw ControlError.invalidArgument(
                    "--code '\(codeText)': a pairing code is 6 characters (A-Z without I and O, 2-9)")
            }
            let name = flags["--name"] ?? "menubar on \(hostName)"
            guard !name.isEmpty, name.utf16.count <= 100 else {
                throw ControlError.invalidArgument("--name must be 1 to 100 characters, not \(name.utf16.count)")
            }
            return try .pair(url: ControlClient.controlURL(urlText), code: code, name: name)
        default:
            throw ControlError.invalidArgument("unknown command '\(verb)'\n\(usage)")
        }
    }
}
