import XCTest
@testable import CoworkMenubarCore

/// Fixtures/menu-model.json is validated against the zod schema by
/// tests/unit/menubar-model-sync.test.ts and holds every item type and action kind.
final class MenuModelTests: XCTestCase {
    private func fixture() throws -> Data {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "menu-model", withExtension: "json", subdirectory: "Fixtures"))
        return try Data(contentsOf: url)
    }

    func testDecodesTheFixture() throws {
        let model = try JSONDecoder().decode(MenuModel.self, from: fixture())
        XCTAssertEqual(model.status.state, .waiting)
        XCTAssertEqual(model.status.pendingApprovals, 1)
        guard case .submenu(_, _, let items) = model.items[1] else { return XCTFail("second item is the approval submenu") }
        XCTAssertEqual(items.first, .action(id: "approve-a1", label: "Approve", action: .approve(approvalId: "a1"), enabled: true))
    }

    func testRefusesAnotherVersion() {
        let json = #"{"version":2,"status":{"state":"running","pendingApprovals":0,"title":"t","tooltip":"t"},"items":[]}"#
        XCTAssertThrowsError(try JSONDecoder().decode(MenuModel.self, from: Data(json.utf8)))
    }

    func testRefusesUnknownKindsAndEmptyIds() {
        for json in [#"{"kind":"format-disk"}"#, #"{"kind":"approve","approvalId":""}"#, #"{"kind":"approve"}"#] {
            XCTAssertThrowsError(try JSONDecoder().decode(MenuAction.self, from: Data(json.utf8)), json)
        }
    }

    func testTitleNamesTheWaitingCount() {
        let s = MenuStatus(state: .waiting, pendingApprovals: 2, title: "cowork-vm", tooltip: "", workspace: nil)
        XCTAssertEqual(s.statusItemTitle, "cowork-vm · 2 waiting")
    }
}
