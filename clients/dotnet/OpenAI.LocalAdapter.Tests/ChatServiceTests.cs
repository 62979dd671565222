// The library against the real proxy (Mistral dialect) in front of the strict simulator.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace OpenAI.LocalAdapter.Tests
{
    [TestFixture]
    public class ChatServiceTests
    {
        private static readonly string Reply = Servers.Reply;
        private const string Weather = "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}";
        private Servers servers;

        [TestFixtureSetUp]
        public void Start() { servers = new Servers(); }

        [TestFixtureTearDown]
        public void Stop() { servers.Dispose(); }

        private OpenAILocalClient Client(int maxRetries = 0, string key = Servers.ApiKey)
        {
            return new OpenAILocalClient(new LocalAdapterConfig { BaseUrl = servers.ProxyUrl, DefaultModel = "gpt-4", ApiKey = key, MaxRetries = maxRetries, TimeoutSeconds = 30 });
        }

        private static ChatCompletionRequest Ask(string text, string model = "gpt-4")
        {
            return new ChatCompletionRequest { Model = model, Messages = new List<ChatMessage> { ChatMessage.System("Be brief."), new ChatMessage(ChatRole.User, text) } };
        }

        private static List<T> Drain<T>(IAsyncEnumerable<T> items, Func<T, bool> stopAfter = null)
        {
            var seen = new List<T>();
            var e = items.GetAsyncEnumerator();
            try
            {
                while (e.MoveNextAsync().AsTask().GetAwaiter().GetResult())
                {
                    seen.Add(e.Current);
                    if (stopAfter != null && stopAfter(e.Current)) break;
                }
            }
            finally
            {
                e.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            return seen;
        }

        [Test]
        public void PlainCompletionNamesTheModelTheClientAskedFor()
        {
            using (var client = Client())
            {
                var reply = client.Chat.CreateCompletionAsync(Ask("Hello")).GetAwaiter().GetResult();
                Assert.AreEqual("gpt-4", reply.Model); // mapped to mistral-sim and back
                Assert.AreEqual(Reply, reply.Choices[0].Message.Content);
                Assert.AreEqual("stop", reply.Choices[0].FinishReason);
                Assert.Greater(reply.Usage.PromptTokens, 0);
                Assert.AreEqual(reply.Usage.PromptTokens + reply.Usage.CompletionTokens, reply.Usage.TotalTokens);
            }
        }

        [Test]
        public void ARequestWithoutAModelUsesTheDefault()
        {
            using (var client = Client())
            {
                var request = Ask("Hello", null);
                Assert.AreEqual("gpt-4", client.Chat.CreateCompletionAsync(request).GetAwaiter().GetResult().Model);
            }
        }

        [Test]
        public void StreamedCompletionArrivesInChunks()
        {
            using (var client = Client())
            {
                var stream = (ChatCompletionStream)client.Chat.CreateCompletionStreamAsync(Ask("Hello"));
                var chunks = Drain(stream);
                Assert.Greater(chunks.Count, 10);
                Assert.IsTrue(chunks.All(c => c.Model == "gpt-4"));
                Assert.AreEqual(Reply, stream.Accumulated.Text);
                Assert.AreEqual("stop", stream.Accumulated.FinishReason);
                Assert.IsNotNull(stream.Accumulated.Usage);
            }
        }

        [Test]
        public void StreamedToolCallIsAssembledFromRawToolCallsText()
        {
            using (var client = Client())
            {
                var request = Ask("Weather in Paris?");
                request.Tools = new List<Tool> { Tool.ForFunction("get_weather", "Current weather.", Weather) };
                request.ToolChoice = ToolChoice.Auto;
                var stream = (ChatCompletionStream)client.Chat.CreateCompletionStreamAsync(request);
                var chunks = Drain(stream);
                Assert.Greater(chunks.Count(c => c.Choices.Any(x => x.Delta != null && x.Delta.ToolCalls != null)), 1); // in pieces
                var call = stream.Accumulated.ToolCalls.Single();
                Assert.AreEqual("get_weather", call.Function.Name);
                Assert.AreEqual("value of city", Json.Str((IDictionary<string, object>)Json.Parse(call.Function.Arguments), "city"));
                Assert.IsNotNull(call.Id);
                Assert.AreEqual("tool_calls", stream.Accumulated.FinishReason);
            }
        }

        [Test]
        public void ToolLoopThroughTheConversationContext()
        {
            using (var client = Client())
            {
                var conversation = (ConversationContext)client.CreateConversation();
                var asked = new List<string>();
                conversation.RegisterTool("get_weather", "Current weather.", Weather, args => { asked.Add(args); return "sunny, 24 C"; });
                conversation.AppendSystemMessage("You are a weather bot.");
                conversation.AppendUserInput("Weather in Paris?");
                Assert.AreEqual(Reply, conversation.GetResponseAsync().GetAwaiter().GetResult());
                Assert.AreEqual(1, asked.Count);
                CollectionAssert.AreEqual(new[] { "system", "user", "assistant", "tool", "assistant" }, conversation.History.Select(m => m.Role).ToArray());
                var sent = (List<object>)servers.Stats()["last_messages"]; // what the strict backend accepted
                CollectionAssert.AreEqual(new[] { "system", "user", "assistant", "tool" }, sent.Cast<IDictionary<string, object>>().Select(m => Json.Str(m, "role")).ToArray());
                // and the next turn goes on from the whole history
                conversation.AppendUserInput("And tomorrow?");
                Assert.AreEqual(Reply, conversation.GetResponseAsync().GetAwaiter().GetResult());
                Assert.AreEqual(2, asked.Count);
            }
        }

        [Test]
        public void StreamedToolLoopThroughTheConversationContext()
        {
            using (var client = Client())
            {
                var conversation = client.CreateConversation();
                conversation.RegisterTool("get_weather", "Current weather.", Weather, args => Task.FromResult("rainy"));
                conversation.AppendUserInput("Weather in Oslo?");
                var pieces = Drain(conversation.GetResponseStreamAsync());
                Assert.Greater(pieces.Count, 5);
                Assert.AreEqual(Reply, string.Concat(pieces));
                Assert.AreEqual(Reply, conversation.History.Last().Content);
                Assert.AreEqual("tool", conversation.History[conversation.History.Count - 2].Role);
            }
        }

        [Test]
        public void AWrongKeyIsAnInvalidApiKeyException()
        {
            using (var client = Client(key: "wrong"))
            {
                var e = Assert.Throws<InvalidApiKeyException>(() => client.Chat.CreateCompletionAsync(Ask("Hi")).GetAwaiter().GetResult());
                Assert.AreEqual(401, e.Status);
                Assert.AreEqual("invalid_api_key", e.Code);
            }
        }

        [Test]
        public void AnUnknownModelIsANotFoundException()
        {
            using (var client = Client())
            {
                var e = Assert.Throws<NotFoundException>(() => client.Chat.CreateCompletionAsync(Ask("Hi", "no-such-model")).GetAwaiter().GetResult());
                Assert.AreEqual(404, e.Status);
                StringAssert.Contains("no-such-model", e.Message);
            }
        }

        [Test]
        public void A503WithRetryAfterIsRetriedAfterTheWaitItNames()
        {
            using (var holder = Client())
            using (var client = Client(maxRetries: 3))
            using (var impatient = Client(maxRetries: 0))
            {
                // The backend takes one request at a time and the proxy queues none: while a
                // stream holds it, another request is answered 503 queue_full, Retry-After: 1.
                var stream = holder.Chat.CreateCompletionStreamAsync(Ask("Hold the slot")).GetAsyncEnumerator();
                Assert.IsTrue(stream.MoveNextAsync().AsTask().GetAwaiter().GetResult());
                var e = Assert.Throws<LocalAdapterException>(() => impatient.Chat.CreateCompletionAsync(Ask("Hi")).GetAwaiter().GetResult());
                Assert.AreEqual(503, e.Status);
                Assert.AreEqual("queue_full", e.Code);
                var watch = Stopwatch.StartNew();
                var retried = client.Chat.CreateCompletionAsync(Ask("Hi"));
                Thread.Sleep(300);
                stream.DisposeAsync().AsTask().GetAwaiter().GetResult(); // frees the slot
                Assert.AreEqual(Reply, retried.GetAwaiter().GetResult().Text);
                Assert.GreaterOrEqual(watch.Elapsed.TotalSeconds, 0.9); // waited what Retry-After said
            }
        }

        [Test]
        public void CancellingMidStreamReachesTheBackend()
        {
            using (var client = Client())
            {
                long before = (long)servers.Stats()["disconnects"];
                var cancel = new CancellationTokenSource();
                var stream = client.Chat.CreateCompletionStreamAsync(Ask("Tell me a long story"), cancel.Token).GetAsyncEnumerator();
                Assert.IsTrue(stream.MoveNextAsync().AsTask().GetAwaiter().GetResult());
                cancel.Cancel();
                Assert.That(() => stream.MoveNextAsync().AsTask().GetAwaiter().GetResult(), Throws.InstanceOf<OperationCanceledException>());
                var deadline = DateTime.UtcNow.AddSeconds(3);
                while ((long)servers.Stats()["disconnects"] == before && DateTime.UtcNow < deadline) Thread.Sleep(20);
                Assert.AreEqual(before + 1, (long)servers.Stats()["disconnects"]); // the simulator saw its client leave
            }
        }

        [Test]
        public void TheDesignsSection2CompilesAndRuns()
        {
            Assert.AreEqual(Reply, DesignSection2.Run(servers.ProxyUrl, Servers.ApiKey).GetAwaiter().GetResult());
        }
    }
}
