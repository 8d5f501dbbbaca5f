//! NATS JetStream implementations (feature `nats`).
