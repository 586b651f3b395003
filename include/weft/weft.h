/* SPDX-License-Identifier: MIT */
/* weft: Python's concurrency toolkit for C. The umbrella header. */
#ifndef WEFT_WEFT_H
#define WEFT_WEFT_H

#include <weft/base.h>
#include <weft/debug.h>
#include <weft/executor.h>
#include <weft/future.h>
#include <weft/metrics.h>
#include <weft/pipeline.h>
#include <weft/pool.h>
#include <weft/queue.h>
#include <weft/scope.h>
#include <weft/sync.h>
#include <weft/thread.h>
#include <weft/trace.h>

#endif /* WEFT_WEFT_H */
