// Streamed chunks added up: the text, the reasoning, and tool calls assembled from their
// deltas (id and name first, the arguments in pieces, by index).
using System.Collections.Generic;
using System.Linq;
using System.Text;

namespace OpenAI.LocalAdapter
{
    public class StreamAccumulator
    {
        private readonly StringBuilder text = new StringBuilder();
        private readonly StringBuilder reasoning = new StringBuilder();
        private readonly SortedDictionary<int, ToolCall> calls = new SortedDictionary<int, ToolCall>();
        private readonly Dictionary<int, StringBuilder> arguments = new Dictionary<int, StringBuilder>();

        public string Model { get; private set; }
        public string FinishReason { get; private set; }
        public Usage Usage { get; private set; }

        public void Add(ChatCompletionResponse chunk)
        {
            Model = chunk.Model ?? Model;
            if (chunk.Usage != null) Usage = chunk.Usage;
            foreach (var choice in chunk.Choices.Where(c => c.Index == 0))
            {
                if (choice.FinishReason != null) FinishReason = choice.FinishReason;
                var delta = choice.Delta;
                if (delta == null) continue;
                if (delta.Content != null) text.Append(delta.Content);
                if (delta.ReasoningContent != null) reasoning.Append(delta.ReasoningContent);
                if (delta.ToolCalls == null) continue;
                foreach (var piece in delta.ToolCalls)
                {
                    int index = piece.Index ?? 0;
                    ToolCall call;
                    if (!calls.TryGetValue(index, out call))
                    {
                        call = calls[index] = new ToolCall { Index = index };
                        arguments[index] = new StringBuilder();
                    }
                    if (piece.Id != null) call.Id = piece.Id;
                    if (piece.Function?.Name != null) call.Function.Name = piece.Function.Name;
                    if (piece.Function?.Arguments != null) arguments[index].Append(piece.Function.Arguments);
                }
            }
        }

        public string Text { get { return text.ToString(); } }

        public List<ToolCall> ToolCalls
        {
            get
            {
                return calls.Select(p => new ToolCall { Id = p.Value.Id, Function = new FunctionCall { Name = p.Value.Function.Name, Arguments = arguments[p.Key].ToString() } }).ToList();
            }
        }

        /// <summary>The assistant message the stream amounts to.</summary>
        public ChatMessage Message
        {
            get
            {
                var toolCalls = ToolCalls;
                return new ChatMessage(ChatRole.Assistant, text.Length > 0 || toolCalls.Count == 0 ? Text : null)
                {
                    ToolCalls = toolCalls.Count > 0 ? toolCalls : null,
                    ReasoningContent = reasoning.Length > 0 ? reasoning.ToString() : null,
                };
            }
        }
    }
}
