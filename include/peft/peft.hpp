// peft/peft.hpp — the whole public API of peftcpp in one include.
//
// Each header can also be included on its own; this one is for programs that use many.
#pragma once

#include "peft/adapter_io.hpp"
#include "peft/checkpoint.hpp"
#include "peft/config.hpp"
#include "peft/convert.hpp"
#include "peft/diagnostic.hpp"
#include "peft/dtype.hpp"
#include "peft/error.hpp"
#include "peft/file_format.hpp"
#include "peft/hub_cache.hpp"
#include "peft/injection.hpp"
#include "peft/inspect.hpp"
#include "peft/merge.hpp"
#include "peft/module_match.hpp"
#include "peft/peft_model.hpp"
#include "peft/peft_state_dict.hpp"
#include "peft/peft_type.hpp"
#include "peft/safetensors.hpp"
#include "peft/signals.hpp"
#include "peft/state_dict.hpp"
#include "peft/tensor.hpp"
#include "peft/torch_file.hpp"
#include "peft/validate.hpp"
#include "peft/version.hpp"
