import XCTest
@testable import CoworkMenubarCore

/// The HMAC answer, on a fixed challenge. tests/unit/menubar-handshake.test.ts reads the four
/// strings below and checks that the server's own verifier (src/host/control/auth.ts) accepts
/// `expected`, so this vector ties the Swift code to what the server accepts.
final class DeviceAuthTests: XCTestCase {
    // The key's base64url holds both '-' and '_', so the alphabet translation is exercised.
    static let vectorKey = "-9aZTRTE8nl7Gs8RJ4W5uHXexhMUBp0iLnn-GZLH_Ek"
    static let vectorNonce = "urIQpfKAR5Dkq_f6J2VZv-4OVb0-haDXm0B2vKu9UzI"
    static let vectorServerId = "cvm-7c47cf74e4aeaa10"
    static let vectorExpected = "397b8ffd5543d9b0a8c0bca0a38b138c20914956b82b91e33ddefd50aa0dc89e"

    func testAnswerMatchesTheVector() throws {
        let key = try DeviceAuth.deviceKey(fromBase64URL: Self.vectorKey)
        XCTAssertEqual(key.count, 32)
        let answer = try DeviceAuth.answer(deviceKey: key, nonce: Self.vectorNonce, serverId: Self.vectorServerId)
        XCTAssertEqual(answer, Self.vectorExpected)
    }

    func testSignedBytesAreNonceThenServerId() {
        let bytes = DeviceAuth.signedBytes(nonce: "abc", serverId: "cvm-1")
        XCTAssertEqual(Array(bytes), Array("abccvm-1".utf8))
    }

    func testKeysThatAreNot32BytesAreRefused() {
        XCTAssertThrowsError(try DeviceAuth.deviceKey(fromBase64URL: "AAAA"))
        XCTAssertThrowsError(try DeviceAuth.deviceKey(fromBase64URL: "not base64url!"))
    }
}
