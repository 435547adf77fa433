/// The version of the Sprout library.
public let version = "0.1.0"
