/* SPDX-License-Identifier: MIT */
/* `weft trace-view`: a weft trace as one self-contained HTML page. */
#ifndef WEFT_TOOLS_TRACE_VIEW_H
#define WEFT_TOOLS_TRACE_VIEW_H

/*
 * trace_view_main: `weft trace-view TRACE.json OUT.html` with argv the two
 * paths (argc 2). Returns the process exit status: 0, 1 (cannot read,
 * not a trace, cannot write) or 2 (usage).
 */
int trace_view_main(int argc, char **argv);

#endif /* WEFT_TOOLS_TRACE_VIEW_H */
