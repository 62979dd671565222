#!/usr/bin/env bash
# Builds the library, its tests and the sample with Mono's mcs (C# 7.2); `make csharp-test`.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p build
NUNIT=${NUNIT_FRAMEWORK:-$(ls /usr/lib/cli/nunit.framework-2.6*/nunit.framework.dll | head -1)}
mcs -langversion:7.2 -warnaserror -nowarn:1591 -target:library -r:System.Net.Http.dll -out:build/OpenAI.LocalAdapter.dll OpenAI.LocalAdapter/*.cs
mcs -langversion:7.2 -target:library -r:System.Net.Http.dll -r:build/OpenAI.LocalAdapter.dll -r:"$NUNIT" -out:build/OpenAI.LocalAdapter.Tests.dll OpenAI.LocalAdapter.Tests/*.cs
cp "$NUNIT" build/
mcs -langversion:7.2 -target:exe -r:System.Net.Http.dll -r:build/OpenAI.LocalAdapter.dll -out:build/TextAdventure.exe samples/TextAdventure/*.cs
