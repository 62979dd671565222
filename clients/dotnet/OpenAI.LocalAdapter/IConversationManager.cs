// A conversation that keeps its own history: the design's conversation manager.
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace OpenAI.LocalAdapter
{
    public interface IConversationManager
    {
        IReadOnlyList<ChatMessage> History { get; }

        void AppendSystemMessage(string message);

        void AppendUserInput(string message);

        /// <summary>A tool the model may call; the handler gets the arguments (JSON) and returns the result.</summary>
        void RegisterTool(string name, string description, string parametersJson, Func<string, Task<string>> handler);

        /// <summary>The model's answer (after any tool calls it makes), appended to the history.</summary>
        Task<string> GetResponseAsync(CancellationToken cancellationToken = default(CancellationToken));

        /// <summary>The answer's text as it streams; appended to the history once complete.</summary>
        IAsyncEnumerable<string> GetResponseStreamAsync(CancellationToken cancellationToken = default(CancellationToken));
    }
}
