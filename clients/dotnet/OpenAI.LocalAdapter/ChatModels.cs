// The chat-completions types, named after the OpenAI wire fields in PascalCase, and their
// JSON form (ToJson / FromJson) through Json.cs.
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace OpenAI.LocalAdapter
{
    public static class ChatRole
    {
        public const string System = "system";
        public const string User = "user";
        public const string Assistant = "assistant";
        public const string Tool = "tool";
    }

    public class FunctionCall
    {
        public string Name { get; set; }
        public string Arguments { get; set; }
    }

    public class ToolCall
    {
        public int? Index { get; set; } // streamed deltas: which call this piece belongs to
        public string Id { get; set; }
        public string Type { get; set; } = "function";
        public FunctionCall Function { get; set; } = new FunctionCall();

        internal Dictionary<string, object> ToJson()
        {
            return new Dictionary<string, object>
            {
                ["id"] = Id,
                ["type"] = Type ?? "function",
                ["function"] = new Dictionary<string, object> { ["name"] = Function?.Name, ["arguments"] = Function?.Arguments ?? "{}" },
            };
        }

        internal static ToolCall FromJson(IDictionary<string, object> o)
        {
            var fn = Json.Obj(o, "function");
            long? index = Json.Long(o, "index");
            return new ToolCall
            {
                Index = index.HasValue ? (int?)index.Value : null,
                Id = Json.Str(o, "id"),
                Type = Json.Str(o, "type") ?? "function",
                Function = new FunctionCall { Name = Json.Str(fn, "name"), Arguments = Json.Str(fn, "arguments") },
            };
        }
    }

    public class ChatMessage
    {
        public ChatMessage() { }

        public ChatMessage(string role, string content)
        {
            Role = role;
            Content = content;
        }

        public string Role { get; set; }
        public string Content { get; set; }
        public List<ToolCall> ToolCalls { get; set; }
        public string ToolCallId { get; set; }
        public string Name { get; set; }
        public string ReasoningContent { get; set; } // reasoning models (Magistral's [THINK])

        public static ChatMessage System(string content) { return new ChatMessage(ChatRole.System, content); }
        public static ChatMessage User(string content) { return new ChatMessage(ChatRole.User, content); }
        public static ChatMessage Assistant(string content) { return new ChatMessage(ChatRole.Assistant, content); }

        public static ChatMessage ToolResult(string toolCallId, string content)
        {
            return new ChatMessage(ChatRole.Tool, content) { ToolCallId = toolCallId };
        }

        internal Dictionary<string, object> ToJson()
        {
            var o = new Dictionary<string, object> { ["role"] = Role, ["content"] = Content };
            if (ToolCalls != null && ToolCalls.Count > 0) o["tool_calls"] = ToolCalls.Select(c => c.ToJson()).ToList();
            o["tool_call_id"] = ToolCallId;
            o["name"] = Name;
            return o;
        }

        internal static ChatMessage FromJson(IDictionary<string, object> o)
        {
            if (o == null) return null;
            var calls = Json.Arr(o, "tool_calls");
            return new ChatMessage
            {
                Role = Json.Str(o, "role"),
                Content = Json.Str(o, "content"),
                ReasoningContent = Json.Str(o, "reasoning_content") ?? Json.Str(o, "reasoning"),
                ToolCallId = Json.Str(o, "tool_call_id"),
                Name = Json.Str(o, "name"),
                ToolCalls = calls == null || calls.Count == 0 ? null : calls.OfType<IDictionary<string, object>>().Select(ToolCall.FromJson).ToList(),
            };
        }
    }

    public class FunctionDefinition
    {
        public string Name { get; set; }
        public string Description { get; set; }
        /// <summary>The JSON schema of the arguments, as JSON text.</summary>
        public string Parameters { get; set; } = "{\"type\":\"object\",\"properties\":{}}";
    }

    public class Tool
    {
        public string Type { get; set; } = "function";
        public FunctionDefinition Function { get; set; } = new FunctionDefinition();

        public static Tool ForFunction(string name, string description, string parametersJson)
        {
            return new Tool { Function = new FunctionDefinition { Name = name, Description = description, Parameters = parametersJson ?? "{\"type\":\"object\",\"properties\":{}}" } };
        }

        internal Dictionary<string, object> ToJson()
        {
            var fn = new Dictionary<string, object> { ["name"] = Function.Name, ["description"] = Function.Description, ["parameters"] = new RawJson(Function.Parameters) };
            return new Dictionary<string, object> { ["type"] = Type, ["function"] = fn };
        }
    }

    /// <summary>tool_choice: "auto", "none", "required", or one function by name.</summary>
    public class ToolChoice
    {
        private ToolChoice(object value) { Value = value; }

        internal object Value { get; }
        public static readonly ToolChoice Auto = new ToolChoice("auto");
        public static readonly ToolChoice None = new ToolChoice("none");
        public static readonly ToolChoice Required = new ToolChoice("required");

        public static ToolChoice Function(string name)
        {
            return new ToolChoice(new Dictionary<string, object> { ["type"] = "function", ["function"] = new Dictionary<string, object> { ["name"] = name } });
        }
    }

    public class ChatCompletionRequest
    {
        public string Model { get; set; }
        public List<ChatMessage> Messages { get; set; } = new List<ChatMessage>();
        public double? Temperature { get; set; }
        public int? MaxTokens { get; set; }
        public bool Stream { get; set; }
        public List<Tool> Tools { get; set; }
        public ToolChoice ToolChoice { get; set; }

        internal string ToJson(string defaultModel, bool stream)
        {
            var o = new Dictionary<string, object>
            {
                ["model"] = string.IsNullOrEmpty(Model) ? defaultModel : Model,
                ["messages"] = Messages.Select(m => m.ToJson()).ToList(),
                ["temperature"] = Temperature,
                ["max_tokens"] = MaxTokens,
            };
            if (stream)
            {
                o["stream"] = true;
                o["stream_options"] = new Dictionary<string, object> { ["include_usage"] = true };
            }
            if (Tools != null && Tools.Count > 0)
            {
                o["tools"] = Tools.Select(t => t.ToJson()).ToList();
                o["tool_choice"] = ToolChoice?.Value;
            }
            return Json.Write(o);
        }
    }

    public class Usage
    {
        public int PromptTokens { get; set; }
        public int CompletionTokens { get; set; }
        public int TotalTokens { get; set; }

        internal static Usage FromJson(IDictionary<string, object> o)
        {
            if (o == null) return null;
            return new Usage
            {
                PromptTokens = (int)(Json.Long(o, "prompt_tokens") ?? 0),
                CompletionTokens = (int)(Json.Long(o, "completion_tokens") ?? 0),
                TotalTokens = (int)(Json.Long(o, "total_tokens") ?? 0),
            };
        }
    }

    public class Choice
    {
        public int Index { get; set; }
        public ChatMessage Message { get; set; } // a whole reply
        public ChatMessage Delta { get; set; } // a streamed chunk
        public string FinishReason { get; set; }

        internal static Choice FromJson(IDictionary<string, object> o)
        {
            return new Choice
            {
                Index = (int)(Json.Long(o, "index") ?? 0),
                Message = ChatMessage.FromJson(Json.Obj(o, "message")),
                Delta = ChatMessage.FromJson(Json.Obj(o, "delta")),
                FinishReason = Json.Str(o, "finish_reason"),
            };
        }
    }

    public class ChatCompletionResponse
    {
        public string Id { get; set; }
        public string Object { get; set; }
        public long Created { get; set; }
        public string Model { get; set; }
        public List<Choice> Choices { get; set; } = new List<Choice>();
        public Usage Usage { get; set; }

        /// <summary>The first choice's text (whole reply or delta), or null.</summary>
        public string Text
        {
            get
            {
                var c = Choices.FirstOrDefault();
                return c == null ? null : (c.Message ?? c.Delta)?.Content;
            }
        }

        public static ChatCompletionResponse FromJson(string text)
        {
            var o = Json.Parse(text) as IDictionary<string, object>;
            if (o == null) throw new System.FormatException("The reply is not a JSON object.");
            var choices = Json.Arr(o, "choices") ?? new List<object>();
            return new ChatCompletionResponse
            {
                Id = Json.Str(o, "id"),
                Object = Json.Str(o, "object"),
                Created = Json.Long(o, "created") ?? 0,
                Model = Json.Str(o, "model"),
                Choices = choices.OfType<IDictionary<string, object>>().Select(Choice.FromJson).ToList(),
                Usage = Usage.FromJson(Json.Obj(o, "usage")),
            };
        }

        public override string ToString()
        {
            return string.Format(CultureInfo.InvariantCulture, "{0} ({1}): {2}", Id, Model, Text);
        }
    }
}
