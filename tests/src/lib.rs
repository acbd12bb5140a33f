//! Conformance scenarios shared by every runtime (filled by the one-module issue).
