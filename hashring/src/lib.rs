//! Consistent hashing shared by every ringkit service.
