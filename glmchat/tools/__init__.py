"""Tools from MCP servers: start the servers a session uses, offer their tools, run calls.

No Textual and no storage here, and the `mcp` SDK is imported only when a
server is actually started (`ToolBox.start`), so a run without tools never
loads it.

Public API:
    ToolBox, ToolSpec, ServerState   (glmchat.tools.toolbox)
    ToolResult, CallStatus           (glmchat.tools.results)
    function_name                    (glmchat.tools.names)
"""

from __future__ import annotations

from glmchat.tools.names import function_name
from glmchat.tools.results import CallStatus, ToolResult
from glmchat.tools.toolbox import ServerState, ToolBox, ToolSpec

__all__ = ["CallStatus", "ServerState", "ToolBox", "ToolResult", "ToolSpec", "function_name"]
