/// The version of Attune itself.
public enum AttuneVersion {
    public static let current = "0.1.0"
}
