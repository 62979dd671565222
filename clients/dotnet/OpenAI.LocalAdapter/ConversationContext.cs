// The history of one conversation, sent with every turn, and the tool loop: while the model
// answers with tool calls, the registered handlers run and their results go back.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace OpenAI.LocalAdapter
{
    public class ConversationContext : IConversationManager
    {
        private readonly IChatService chat;
        private readonly List<ChatMessage> history = new List<ChatMessage>();
        private readonly Dictionary<string, Func<string, Task<string>>> handlers = new Dictionary<string, Func<string, Task<string>>>();
        private readonly List<Tool> tools = new List<Tool>();

        public ConversationContext(IChatService chat, string model = null)
        {
            this.chat = chat;
            Model = model;
        }

        /// <summary>The model (null: the client's DefaultModel).</summary>
        public string Model { get; set; }
        public double? Temperature { get; set; }
        public int? MaxTokens { get; set; }
        /// <summary>Rounds of tool calls one answer may take before it is given up.</summary>
        public int MaxToolRounds { get; set; } = 8;

        public IReadOnlyList<ChatMessage> History { get { return history; } }

        public void AppendSystemMessage(string message) { history.Add(ChatMessage.System(message)); }

        public void AppendUserInput(string message) { history.Add(ChatMessage.User(message)); }

        public void RegisterTool(string name, string description, string parametersJson, Func<string, Task<string>> handler)
        {
            tools.RemoveAll(t => t.Function.Name == name);
            tools.Add(Tool.ForFunction(name, description, parametersJson));
            handlers[name] = handler;
        }

        public void RegisterTool(string name, string description, string parametersJson, Func<string, string> handler)
        {
            RegisterTool(name, description, parametersJson, args => Task.FromResult(handler(args)));
        }

        internal ChatCompletionRequest Request()
        {
            return new ChatCompletionRequest
            {
                Model = Model,
                Messages = new List<ChatMessage>(history),
                Temperature = Temperature,
                MaxTokens = MaxTokens,
                Tools = tools.Count > 0 ? new List<Tool>(tools) : null,
            };
        }

        public async Task<string> GetResponseAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            for (int round = 0; ; round++)
            {
                var reply = await chat.CreateCompletionAsync(Request(), cancellationToken).ConfigureAwait(false);
                var message = reply.Choices.FirstOrDefault()?.Message ?? ChatMessage.Assistant("");
                message.Role = ChatRole.Assistant;
                history.Add(message);
                if (!await RunTools(message, round, cancellationToken).ConfigureAwait(false)) return message.Content ?? "";
            }
        }

        public IAsyncEnumerable<string> GetResponseStreamAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            return new ConversationStream(this, cancellationToken);
        }

        /// <summary>Runs the calls of an assistant message; false when it made none.</summary>
        internal async Task<bool> RunTools(ChatMessage message, int round, CancellationToken cancellationToken)
        {
            if (message.ToolCalls == null || message.ToolCalls.Count == 0) return false;
            if (round + 1 >= MaxToolRounds) throw new InvalidOperationException("The model kept calling tools for " + MaxToolRounds + " rounds.");
            foreach (var call in message.ToolCalls)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Func<string, Task<string>> handler;
                string result = handlers.TryGetValue(call.Function.Name ?? "", out handler)
                    ? await handler(call.Function.Arguments ?? "{}").ConfigureAwait(false)
                    : "Error: no tool named '" + call.Function.Name + "'.";
                history.Add(ChatMessage.ToolResult(call.Id, result));
            }
            return true;
        }

        internal void Append(ChatMessage message) { history.Add(message); }

        /// <summary>The text of each round's stream; tool rounds run between them.</summary>
        private sealed class ConversationStream : IAsyncEnumerable<string>, IAsyncEnumerator<string>
        {
            private readonly ConversationContext context;
            private CancellationToken cancellationToken;
            private ChatCompletionStream inner;
            private int round;
            private bool finished;

            public ConversationStream(ConversationContext context, CancellationToken cancellationToken)
            {
                this.context = context;
                this.cancellationToken = cancellationToken;
            }

            public string Current { get; private set; }

            public IAsyncEnumerator<string> GetAsyncEnumerator(CancellationToken token = default(CancellationToken))
            {
                if (token.CanBeCanceled) cancellationToken = token;
                return this;
            }

            public ValueTask<bool> MoveNextAsync() { return new ValueTask<bool>(Next()); }

            private async Task<bool> Next()
            {
                while (!finished)
                {
                    if (inner == null)
                    {
                        var request = context.Request();
                        inner = (ChatCompletionStream)context.chat.CreateCompletionStreamAsync(request, cancellationToken);
                        inner.GetAsyncEnumerator(cancellationToken);
                    }
                    if (await inner.MoveNextAsync().ConfigureAwait(false))
                    {
                        string text = inner.Current.Choices.FirstOrDefault()?.Delta?.Content;
                        if (string.IsNullOrEmpty(text)) continue;
                        Current = text;
                        return true;
                    }
                    var message = inner.Accumulated.Message;
                    await inner.DisposeAsync().ConfigureAwait(false);
                    inner = null;
                    context.Append(message);
                    if (!await context.RunTools(message, round++, cancellationToken).ConfigureAwait(false)) finished = true;
                }
                return false;
            }

            public ValueTask DisposeAsync()
            {
                finished = true;
                return inner != null ? inner.DisposeAsync() : default(ValueTask);
            }
        }
    }
}
