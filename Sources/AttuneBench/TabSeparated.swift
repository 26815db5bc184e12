import Foundation

/// The benchmarks' tab-separated inputs (prompts, hand labels, texts): one record per line,
/// `#` lines are comments.
public enum TabSeparated {
    /// Each non-comment line of the file at `path`, with its fields (empty fields kept).
    public static func rows(ofFile path: String) throws -> [(line: Substring, fields: [String])] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            (line, line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init))
        }
    }
}
