//! Advice: the longest context that fits, the best format that fits, training settings that fit.
