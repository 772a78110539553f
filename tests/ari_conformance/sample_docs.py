"""A tiny `asterisk-ari` folder as Asterisk and the lab write it (api-docs with their prose, a
README naming the version, two traces), for the tests that must not need ../shared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_JSON: dict[str, Any] = {
    "_copyright": "Copyright (C) 2012 - 2013, Digium, Inc.",
    "_author": "David M. Lee, II <dlee@digium.com>",
    "apiVersion": "2.0.0",
    "swaggerVersion": "1.2",
    "basePath": "http://localhost:8088/ari",
    "resourcePath": "/api-docs/events.{format}",
    "since": ["12.0.0"],
    "apis": [
        {
            "path": "/events",
            "description": "Events from Asterisk to applications",
            "operations": [
                {
                    "httpMethod": "GET",
                    "since": ["12.0.0"],
                    "upgrade": "websocket",
                    "websocketProtocol": "ari",
                    "summary": "WebSocket connection for events.",
                    "nickname": "eventWebsocket",
                    "responseClass": "Message",
                    "parameters": [
                        {
                            "name": "app",
                            "description": "Applications to subscribe to.",
                            "paramType": "query",
                            "required": True,
                            "allowMultiple": True,
                            "dataType": "string",
                        },
                        {
                            "name": "subscribeAll",
                            "description": "Subscribe to all Asterisk events.",
                            "paramType": "query",
                            "required": False,
                            "allowMultiple": False,
                            "dataType": "boolean",
                            "defaultValue": False,
                        },
                    ],
                    "errorResponses": [
                        {"code": 400, "reason": "Invalid application name"},
                        {"code": 200, "reason": "Event stream"},
                    ],
                }
            ],
        }
    ],
    "models": {
        "Message": {
            "id": "Message",
            "description": "Base type for errors and events",
            "discriminator": "type",
            "properties": {
                "type": {"type": "string", "required": True, "description": "Message type."}
            },
            "subTypes": ["Event"],
        },
        "Event": {
            "id": "Event",
            "description": "Base type for asynchronous events from Asterisk.",
            "properties": {
                "application": {"type": "string", "required": True, "description": "Name."},
                "timestamp": {"type": "Date", "required": True, "description": "Time."},
            },
            "subTypes": ["StasisStart"],
        },
        "StasisStart": {
            "id": "StasisStart",
            "description": "Notification that a channel has entered a Stasis application.",
            "properties": {
                "args": {"type": "List[string]", "required": True, "description": "Arguments."},
                "state": {
                    "type": "string",
                    "description": "A state.",
                    "allowableValues": {"valueType": "LIST", "values": ["Up", "Down"]},
                },
            },
        },
    },
}

# What scripts/ari_reference.py keeps of EVENTS_JSON: the facts, in the api-docs' own values.
COMPACT_EVENTS: dict[str, Any] = {
    "models": {
        "Message": {
            "discriminator": "type",
            "properties": {"type": {"type": "string", "required": True}},
            "subTypes": ["Event"],
        },
        "Event": {
            "properties": {
                "application": {"type": "string", "required": True},
                "timestamp": {"type": "Date", "required": True},
            },
            "subTypes": ["StasisStart"],
        },
        "StasisStart": {
            "properties": {
                "args": {"type": "List[string]", "required": True},
                "state": {
                    "type": "string",
                    "allowableValues": {"valueType": "LIST", "values": ["Up", "Down"]},
                },
            },
        },
    },
    "operations": {
        "/events": {
            "GET": {
                "nickname": "eventWebsocket",
                "responseClass": "Message",
                "since": ["12.0.0"],
                "upgrade": "websocket",
                "websocketProtocol": "ari",
                "errorCodes": [200, 400],
                "parameters": [
                    {
                        "name": "app",
                        "paramType": "query",
                        "dataType": "string",
                        "required": True,
                        "allowMultiple": True,
                    },
                    {
                        "name": "subscribeAll",
                        "paramType": "query",
                        "dataType": "boolean",
                        "required": False,
                        "allowMultiple": False,
                        "defaultValue": False,
                    },
                ],
            }
        }
    },
}

README = "# Asterisk ARI reference data\n\nFrom Asterisk 22.10.1's source tree (GPL-2.0).\n"
TRACES = {
    "captures/ring.jsonl": b'{"t": 0.0, "kind": "ws", "state": "connected"}\n',
    "captures/media/play.jsonl": b'{"t": 0.5, "kind": "ws", "state": "closed"}\n',
}


def write_api_docs(directory: Path) -> Path:
    """`directory` with a raw `events.json` in it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "events.json").write_text(json.dumps(EVENTS_JSON, indent=2), encoding="utf-8")
    return directory


def write_source(root: Path) -> Path:
    """A whole `asterisk-ari` folder: README.md, api-docs/, captures/ and captures/media/."""
    write_api_docs(root / "api-docs")
    (root / "README.md").write_text(README, encoding="utf-8")
    for name, content in TRACES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root
