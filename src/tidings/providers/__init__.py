"""The provider contract and its implementations (Mailgun)."""
