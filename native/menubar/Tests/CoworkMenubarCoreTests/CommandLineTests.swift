import XCTest
@testable import CoworkMenubarCore

final class CommandLineTests: XCTestCase {
    func testPairNeedsALoopbackWsUrlAndAValidCode() throws {
        let cmd = try MenubarCommand.parse(["pair", "--url", "ws://127.0.0.1:7420", "--code", "k7qx2m"], hostName: "mac")
        XCTAssertEqual(cmd, .pair(url: URL(string: "ws://127.0.0.1:7420")!, code: "K7QX2M", name: "menubar on mac"))
        XCTAssertThrowsError(try MenubarCommand.parse(["pair", "--url", "ws://192.0.2.1:7420", "--code", "K7QX2M"], hostName: "m"))
        XCTAssertThrowsError(try MenubarCommand.parse(["pair", "--url", "ws://127.evil.example:7420", "--code", "K7QX2M"], hostName: "m"))
        XCTAssertThrowsError(try MenubarCommand.parse(["pair", "--url", "ws://127.0.0.1", "--code", "K7QX2M"], hostName: "m"))
        XCTAssertThrowsError(try MenubarCommand.parse(["pair", "--url", "ws://127.0.0.1:1", "--code", "K7QX20"], hostName: "m"))
    }

    func testNoArgumentsRuns() throws {
        XCTAssertEqual(try MenubarCommand.parse([], hostName: "m"), .run)
    }
}
