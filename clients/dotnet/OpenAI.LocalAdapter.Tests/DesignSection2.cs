// A program written against the design's section 2 (client, chat service, conversation
// context), with the design's names only: it must compile against the library unchanged.
using System.Collections.Generic;
using System.Threading.Tasks;
using OpenAI.LocalAdapter;

namespace OpenAI.LocalAdapter.Tests
{
    public static class DesignSection2
    {
        public static async Task<string> Run(string baseUrl, string apiKey)
        {
            var config = new LocalAdapterConfig
            {
                BaseUrl = baseUrl,
                DefaultModel = "gpt-4",
                TimeoutSeconds = 300,
                MaxRetries = 3,
                ApiKey = apiKey,
            };
            using (var client = new OpenAILocalClient(config))
            {
                IChatService chat = client.Chat;
                ChatCompletionResponse reply = await chat.CreateCompletionAsync(new ChatCompletionRequest
                {
                    Messages = new List<ChatMessage> { new ChatMessage("user", "Hello") },
                    Temperature = 0.7,
                    MaxTokens = 100,
                });
                IAsyncEnumerable<ChatCompletionResponse> stream = chat.CreateCompletionStreamAsync(new ChatCompletionRequest { Messages = reply.Choices[0].Message != null ? new List<ChatMessage> { new ChatMessage("user", "Hi") } : null, Stream = true });
                var chunks = stream.GetAsyncEnumerator();
                while (await chunks.MoveNextAsync()) { }
                await chunks.DisposeAsync();

                IConversationManager conversation = client.CreateConversation();
                conversation.AppendSystemMessage("You are the narrator of a text adventure.");
                conversation.AppendUserInput("I open the door.");
                string answer = await conversation.GetResponseAsync();
                conversation.AppendUserInput("I look around.");
                var pieces = conversation.GetResponseStreamAsync().GetAsyncEnumerator();
                while (await pieces.MoveNextAsync()) { }
                return answer;
            }
        }
    }
}
