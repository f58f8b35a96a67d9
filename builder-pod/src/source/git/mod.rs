//! Git sources: resolve a revision to a commit and fetch it into an isolated checkout.
