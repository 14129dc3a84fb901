//! PLACEHOLDER: replaced by the definition work.
