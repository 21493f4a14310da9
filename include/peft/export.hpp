// peft/export.hpp — PEFT_API marks what libpeftcpp exports.
//
// The library is compiled with -fvisibility=hidden -fvisibility-inlines-hidden: only
// declarations marked PEFT_API (free functions, and classes whose members or type
// information users need) are visible outside libpeftcpp.so. The same attribute serves
// the library and its users, static or shared, so nothing needs defining to use it.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define PEFT_API __attribute__((visibility("default")))
#else
#define PEFT_API
#endif
